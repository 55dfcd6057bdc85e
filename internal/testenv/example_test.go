package testenv_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/stampede-load/stampede/internal/testenv"
)

// ExampleStart starts the lab's services outside a test, as a benchmark
// script does, with every server's log kept in a directory of its own.
func ExampleStart() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := testenv.Start(ctx, testenv.StackOptions{
		Dir:     "bench-logs",
		PG:      testenv.PGOptions{MaxConnections: 50, LogLockWaits: true},
		Bouncer: testenv.BouncerOptions{PoolMode: "transaction", DefaultPoolSize: 4, QueryWaitTimeout: 10 * time.Second},
		Redis:   testenv.RedisOptions{MaxClients: 100},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	fmt.Println("app via pgbouncer:", s.Bouncer.Addr(), "redis:", s.Redis.URL(), "postgres log:", s.PG.LogPath)
}
