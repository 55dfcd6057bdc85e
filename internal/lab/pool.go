package lab

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// ServerError is an error as PostgreSQL or PgBouncer sends it. Its text is
// pgx's rendering of the same ErrorResponse (pgconn.PgError.Error), so the
// embedded store leaves exactly the log signature the postgres store leaves:
// "FATAL: query_wait_timeout (SQLSTATE 08P01)".
type ServerError struct {
	Severity string // FATAL or ERROR
	Code     string // SQLSTATE
	Message  string
}

// Error renders e as pgx does: "SEVERITY: message (SQLSTATE code)".
func (e *ServerError) Error() string {
	return e.Severity + ": " + e.Message + " (SQLSTATE " + e.Code + ")"
}

// SQLState returns e's SQLSTATE code, like pgconn.PgError.SQLState.
func (e *ServerError) SQLState() string { return e.Code }

// bouncer is an in-process pool with PgBouncer's session-pool semantics:
// size servers, and reserve more for clients that have waited longer than
// reserveTimeout; clients wait in FIFO order and are disconnected with
// FATAL query_wait_timeout when they wait longer than waitTimeout; more than
// maxClients clients at once are refused with max_client_conn.
type bouncer struct {
	size, reserve  int
	reserveTimeout time.Duration
	waitTimeout    time.Duration
	maxClients     int
	logs           *logs
	db, user       string

	mu      sync.Mutex
	active  int // servers linked to a client
	clients int // clients connected: active + waiting
	queue   []*waiter

	waits, timeouts, refused atomic.Int64
	waitNanos                atomic.Int64
	nextPort                 atomic.Int64
}

type waiter struct {
	ch      chan struct{}
	granted bool
	since   time.Time // when it started waiting, for maxwait
}

func newBouncer(c Config, l *logs) *bouncer {
	b := &bouncer{size: c.PoolSize, reserve: c.ReservePoolSize, reserveTimeout: c.ReservePoolTimeout,
		waitTimeout: c.QueryWaitTimeout, maxClients: c.MaxClientConn, logs: l, db: "ahsp", user: "ahsp"}
	b.nextPort.Store(40000)
	return b
}

// client is one app connection to the bouncer.
type bouncerClient struct {
	b      *bouncer
	prefix string
	once   sync.Once
}

// acquire connects a client and waits for a server, as PgBouncer does for a
// client that sends its first query. The error is a *ServerError with PgBouncer's
// reason, or ctx's error.
func (b *bouncer) acquire(ctx context.Context) (*bouncerClient, error) {
	port := b.nextPort.Add(1)
	c := &bouncerClient{b: b, prefix: fmt.Sprintf("C-%#x: %s/%s@127.0.0.1:%d", 0xc000000000+port*0x100, b.db, b.user, port)}
	if b.size <= 0 {
		return c, nil
	}
	start := time.Now()
	b.mu.Lock()
	if b.maxClients > 0 && b.clients >= b.maxClients {
		b.mu.Unlock()
		b.refused.Add(1)
		b.logs.pgbouncerf("WARNING", c.prefix, "pooler error: no more connections allowed (max_client_conn)")
		return nil, &ServerError{Severity: "FATAL", Code: "08P01", Message: "no more connections allowed (max_client_conn)"}
	}
	b.clients++
	if b.active < b.size && len(b.queue) == 0 {
		b.active++
		b.mu.Unlock()
		return c, nil
	}
	w := &waiter{ch: make(chan struct{}), since: start}
	b.queue = append(b.queue, w)
	b.mu.Unlock()
	b.waits.Add(1)
	defer func() { b.waitNanos.Add(int64(time.Since(start))) }()

	var reserveC, timeoutC <-chan time.Time
	if b.reserve > 0 {
		t := time.NewTimer(b.reserveTimeout)
		defer t.Stop()
		reserveC = t.C
	}
	if b.waitTimeout > 0 {
		t := time.NewTimer(b.waitTimeout)
		defer t.Stop()
		timeoutC = t.C
	}
	for {
		select {
		case <-w.ch:
			return c, nil
		case <-reserveC:
			reserveC = nil
			b.mu.Lock()
			if !w.granted && b.active < b.size+b.reserve {
				b.remove(w)
				b.active++
				b.mu.Unlock()
				return c, nil
			}
			b.mu.Unlock()
		case <-timeoutC:
			if b.abandon(w) {
				return c, nil
			}
			b.timeouts.Add(1)
			// PgBouncer's disconnect_client logs the close at LOG and the
			// error sent to the client at WARNING.
			b.logs.pgbouncerf("LOG", c.prefix, "closing because: query_wait_timeout (age=%ds)", int(time.Since(start).Seconds()))
			b.logs.pgbouncerf("WARNING", c.prefix, "pooler error: query_wait_timeout")
			return nil, &ServerError{Severity: "FATAL", Code: "08P01", Message: "query_wait_timeout"}
		case <-ctx.Done():
			if b.abandon(w) {
				return c, nil
			}
			return nil, ctx.Err()
		}
	}
}

// abandon takes w out of the queue; it reports true when w was granted a
// server meanwhile, which the caller then owns.
func (b *bouncer) abandon(w *waiter) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if w.granted {
		return true
	}
	b.remove(w)
	b.clients--
	return false
}

func (b *bouncer) remove(w *waiter) {
	for i, q := range b.queue {
		if q == w {
			b.queue = append(b.queue[:i], b.queue[i+1:]...)
			return
		}
	}
}

// release gives the client's server to the oldest waiter, or back to the pool.
func (c *bouncerClient) release() {
	b := c.b
	if b.size <= 0 {
		return
	}
	c.once.Do(func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.clients--
		// The server goes to the oldest waiter, as PgBouncer links a freed
		// server to the head of cl_waiting.
		if len(b.queue) > 0 {
			w := b.queue[0]
			b.queue = b.queue[1:]
			w.granted = true
			close(w.ch)
			return
		}
		b.active--
	})
}

// stats returns the pool's current counts.
func (b *bouncer) stats() (active, waiting int) {
	active, waiting, _ = b.poolStats(time.Now())
	return active, waiting
}

// poolStats returns the pool's counts and how long its oldest waiter has
// waited (SHOW POOLS' maxwait).
func (b *bouncer) poolStats(now time.Time) (active, waiting int, maxwait time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.queue) > 0 {
		maxwait = now.Sub(b.queue[0].since)
	}
	return b.active, len(b.queue), maxwait
}
