package lab_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/stampede-load/stampede/internal/lab"
)

// Example starts the lab in process on the embedded store and a free
// loopback port, as the demo does, with the seed's failing configuration.
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir, _ := os.MkdirTemp("", "lab-example-")
	defer os.RemoveAll(dir)

	var cfg lab.Config // embedded store, in-memory sessions
	if err := cfg.Preset("seed"); err != nil {
		panic(err)
	}
	cfg.LogDir = dir
	srv, err := lab.New(ctx, cfg)
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()

	resp, err := http.Get("http://" + ln.Addr().String() + "/healthz")
	if err != nil {
		panic(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Printf("%d %s", resp.StatusCode, body)
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
	// Output: 200 ok
}
