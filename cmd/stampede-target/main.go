// Command stampede-target serves stampede's test target (internal/testserver)
// on an address, for benchmarks against wrk, hey and Locust: GET / answers
// "ok"; /accounts/login/ is a Django-style login (any user, the password
// given by -password); /dashboard/ needs the session cookie.
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/stampede-load/stampede/internal/testserver"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8089", "listen address")
	password := flag.String("password", "bench", "the password every account accepts")
	flag.Parse()
	srv := &http.Server{Addr: *addr, Handler: testserver.New(*password), ReadHeaderTimeout: 10 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, "stampede-target:", err)
		os.Exit(1)
	}
}
