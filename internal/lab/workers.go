package lab

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// workers caps the requests in flight like gunicorn's sync workers behind
// nginx:
//
//   - each of n workers runs one request at a time; others queue;
//   - more than backlog queued requests: the connection is dropped unanswered
//     (a full listen queue);
//   - queued longer than queueTimeout: 504 Gateway Time-out (the proxy's
//     proxy_read_timeout), with no gunicorn line since gunicorn never saw it;
//   - running longer than timeout: gunicorn logs "[CRITICAL] WORKER TIMEOUT
//     (pid:N)", the worker exits and a new one boots, and the client gets 502
//     Bad Gateway (nginx's answer when its upstream closes).
type workers struct {
	n                     int
	timeout, queueTimeout time.Duration
	backlog               int64
	logs                  *logs
	m                     *metrics
	arbiter               int

	slots  chan int
	queued atomic.Int64
	mu     sync.Mutex
	pids   []int
	next   int
}

func newWorkers(c Config, l *logs, m *metrics) *workers {
	w := &workers{n: c.Workers, timeout: c.WorkerTimeout, queueTimeout: c.WorkerQueueTimeout,
		backlog: int64(c.Backlog), logs: l, m: m, arbiter: os.Getpid()}
	w.next = w.arbiter + 1
	if w.n > 0 {
		w.slots = make(chan int, w.n)
		w.pids = make([]int, w.n)
		for i := range w.n {
			w.slots <- i
		}
	}
	return w
}

// boot logs the workers' start, as gunicorn's arbiter does.
func (w *workers) boot() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := range w.pids {
		if w.pids[i] == 0 {
			w.pids[i] = w.next
			w.next++
			w.logs.gunicornf(w.pids[i], "INFO", "Booting worker with pid: %d", w.pids[i])
		}
	}
}

func (w *workers) pid(slot int) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.pids[slot] == 0 {
		w.pids[slot] = w.next
		w.next++
	}
	return w.pids[slot]
}

// replace kills the worker in slot and boots a new one.
func (w *workers) replace(slot int) {
	w.mu.Lock()
	old := w.pids[slot]
	w.pids[slot] = w.next
	w.next++
	nw := w.pids[slot]
	w.mu.Unlock()
	w.logs.gunicornf(w.arbiter, "CRITICAL", "WORKER TIMEOUT (pid:%d)", old)
	w.logs.gunicornf(old, "INFO", "Worker exiting (pid: %d)", old)
	w.logs.gunicornf(nw, "INFO", "Booting worker with pid: %d", nw)
}

const nginx502 = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
const nginx504 = "<html>\r\n<head><title>504 Gateway Time-out</title></head>\r\n<body>\r\n<center><h1>504 Gateway Time-out</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"

func (w *workers) wrap(next http.Handler) http.Handler {
	if w.n <= 0 {
		return next
	}
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		outer := state(r)
		if w.queued.Add(1) > w.backlog {
			w.queued.Add(-1)
			w.m.workerDropped.Add(1)
			outer.dropped = true
			if c, _, err := http.NewResponseController(rw).Hijack(); err == nil {
				_ = c.Close()
			}
			return
		}
		qt := time.NewTimer(w.queueTimeout)
		var slot int
		select {
		case slot = <-w.slots:
			w.queued.Add(-1)
			qt.Stop()
		case <-qt.C:
			w.queued.Add(-1)
			w.m.workerQueueTimeouts.Add(1)
			writeRaw(rw, http.StatusGatewayTimeout, nginx504)
			return
		case <-r.Context().Done():
			w.queued.Add(-1)
			qt.Stop()
			return
		}
		w.m.workersBusy.Add(1)
		defer w.m.workersBusy.Add(-1)
		_ = w.pid(slot)

		// The worker runs apart from the connection so a timeout can answer
		// while it is stuck; it gets its own copy of the body and state.
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		inner := &reqState{}
		ctx, cancel := context.WithCancel(context.WithValue(r.Context(), stateKey{}, inner))
		defer cancel()
		r2 := r.WithContext(ctx)
		r2.Body = io.NopCloser(bytes.NewReader(body))
		bw := &bufferedWriter{h: http.Header{}}
		done := make(chan struct{})
		go func() {
			defer close(done)
			next.ServeHTTP(bw, r2)
		}()
		t := time.NewTimer(w.timeout)
		defer t.Stop()
		select {
		case <-done:
			w.slots <- slot
			*outer = *inner
			for k, v := range bw.h {
				rw.Header()[k] = v
			}
			if bw.status == 0 {
				bw.status = http.StatusOK
			}
			rw.WriteHeader(bw.status)
			_, _ = rw.Write(bw.buf.Bytes())
		case <-t.C:
			cancel()
			w.m.workerTimeouts.Add(1)
			w.replace(slot)
			w.slots <- slot
			writeRaw(rw, http.StatusBadGateway, nginx502)
		}
	})
}

func writeRaw(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/html")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// bufferedWriter holds a worker's response until it is complete.
type bufferedWriter struct {
	h      http.Header
	status int
	buf    bytes.Buffer
}

func (b *bufferedWriter) Header() http.Header { return b.h }
func (b *bufferedWriter) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
}
func (b *bufferedWriter) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.buf.Write(p)
}
