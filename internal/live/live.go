// Package live serves the live page of a running load test (stampede run
// --ui): its charts, per-endpoint table, failures, log evidence and the
// diagnosis so far, pushed once a second over Server-Sent Events, and the
// controls that change its load or stop it.
//
// A Server is a runner.Observer: it keeps the run as per-second
// aggregates (never per request) and serves them; see docs/live.md for
// the page and its HTTP API.
package live

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/runner"
)

// DefaultAddr is where the page is served when no address is given: this
// host's loopback, Locust's web port.
const DefaultAddr = "127.0.0.1:8089"

// Defaults of Options.
const (
	// DefaultKeepEvidence is how many log events the page keeps (the
	// latest ones); the others are counted.
	DefaultKeepEvidence = 200
	// DefaultDiagnoseEvery is the least time between two diagnoses of
	// the records so far; a diagnosis that took d waits at least 10×d.
	DefaultDiagnoseEvery = 5 * time.Second
	// MaxPages is how many pages may follow the run at once.
	MaxPages = 64
)

// Options configure a Server. The zero value serves a read-only page on
// DefaultAddr.
type Options struct {
	// Addr is the host:port to listen on; "" is DefaultAddr. Port 0 picks
	// a free port (see Server.URL).
	Addr string
	// Token, when not "", is the Bearer token every control request must
	// carry (Authorization: Bearer TOKEN). A non-loopback Addr with
	// controls on requires one.
	Token string
	// ReadOnly turns the controls off: the page shows none and the
	// control endpoints refuse every request.
	ReadOnly bool
	// Control changes the run's load and stops it; nil means the page has
	// no control, as with ReadOnly.
	Control *runner.Control
	// Metrics, when not nil, is served at /metrics.
	Metrics http.Handler
	// Dir is the run directory; "" is runner.DefaultDir of the run's
	// start, where runner.Run writes when its Options.Dir is "".
	Dir string
	// Run are the facts the page shows about the run.
	Run RunFacts
	// NoDiagnose turns the diagnosis so far off (an observer of a split
	// load, a run with --no-diagnose).
	NoDiagnose bool
	// KeepEvidence is how many log events the page keeps; 0 is
	// DefaultKeepEvidence.
	KeepEvidence int
	// DiagnoseEvery is the least time between two diagnoses; 0 is
	// DefaultDiagnoseEvery.
	DiagnoseEvery time.Duration
	// Findings, when not nil, is given the findings of each diagnosis so
	// far as it is made (the metrics sent out expose them), from the
	// diagnosis' goroutine. The final diagnosis goes to observers' End.
	Findings func([]stampede.Finding)
}

// RunFacts describe the run on the page. None may hold a secret: the
// target is redacted by the caller.
type RunFacts struct {
	// Target is the target URL with its password masked.
	Target string `json:"target,omitempty"`
	// Model is "closed" or "open".
	Model string `json:"model,omitempty"`
	// Duration is the planned duration.
	Duration time.Duration `json:"-"`
	// Segment is "i/N" for a segment of a split load.
	Segment string `json:"segment,omitempty"`
	// Observer is set for the observer of a split load (probes and logs,
	// no load).
	Observer bool `json:"observer,omitempty"`
	// StartAt is the instant the run waits for, when it does.
	StartAt time.Time `json:"start_at,omitzero"`
}

// controls reports whether o has controls on.
func (o Options) controls() bool { return !o.ReadOnly && o.Control != nil }

// Validate reports options a Server cannot serve safely: a bad address, or
// controls on a non-loopback address without a token.
func (o Options) Validate() error {
	addr := o.addr()
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("live: address %q: want HOST:PORT, e.g. %s", addr, DefaultAddr)
	}
	if o.controls() && o.Token == "" && !Loopback(addr) {
		return fmt.Errorf("live: %s is not a loopback address: the controls need a token (or turn them off)", addr)
	}
	if o.KeepEvidence < 0 || o.DiagnoseEvery < 0 {
		return errors.New("live: KeepEvidence and DiagnoseEvery must not be negative")
	}
	return nil
}

func (o Options) addr() string {
	if o.Addr == "" {
		return DefaultAddr
	}
	return o.Addr
}

// Loopback reports whether addr (host:port) listens on this host's
// loopback only: "localhost", 127.0.0.0/8 or ::1. An empty host (every
// interface) and any other name are not.
func Loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Server serves the live page of one run and observes it. Create it with
// Start, give it to runner.Options.Observers, and Close it once the run
// is over.
type Server struct {
	o        Options
	loopback bool
	ln       net.Listener
	srv      *http.Server
	mux      *http.ServeMux

	// rec is the recorder goroutine's own state (Result, Second).
	rec recorder

	// mu guards st and the pages.
	mu    sync.Mutex
	st    state
	pages map[*page]struct{}

	kick  chan struct{} // a push is due
	ended chan struct{} // closed by End
	done  chan struct{} // closed by Close
	wg    sync.WaitGroup
	once  sync.Once
	endMu sync.Once
}

var _ runner.Observer = (*Server)(nil)

// Start listens on o.Addr and serves the page until Close.
func Start(o Options) (*Server, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	s := newServer(o)
	ln, err := net.Listen("tcp", o.addr())
	if err != nil {
		return nil, fmt.Errorf("live: %w", err)
	}
	s.ln = ln
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		// No ReadTimeout or WriteTimeout: the event stream lasts the
		// run (each of its writes has a deadline of its own), and the
		// control requests set theirs.
	}
	s.wg.Go(func() { _ = s.srv.Serve(ln) })
	s.wg.Go(s.pusher)
	if !o.NoDiagnose {
		s.wg.Go(s.diagnoseLoop)
	}
	return s, nil
}

// newServer returns a Server that does not listen: ServeHTTP serves it.
func newServer(o Options) *Server {
	if o.KeepEvidence == 0 {
		o.KeepEvidence = DefaultKeepEvidence
	}
	if o.DiagnoseEvery == 0 {
		o.DiagnoseEvery = DefaultDiagnoseEvery
	}
	s := &Server{
		o:        o,
		loopback: Loopback(o.addr()),
		pages:    map[*page]struct{}{},
		kick:     make(chan struct{}, 1),
		ended:    make(chan struct{}),
		done:     make(chan struct{}),
	}
	s.st.init(o)
	s.rec.init()
	s.routes()
	return s
}

// URL returns the page's address, http://HOST:PORT/, with the port the
// listener got.
func (s *Server) URL() string {
	return "http://" + s.ln.Addr().String() + "/"
}

// Addr returns the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Pages returns how many pages follow the run now (open event streams).
func (s *Server) Pages() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pages)
}

// Linger waits, once the run is over, while a page is still open, so that
// its user can open report.html from it: until the last page closes, max
// has passed or ctx ends.
func (s *Server) Linger(ctx context.Context, max time.Duration) {
	deadline := time.NewTimer(max)
	defer deadline.Stop()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for s.Pages() > 0 {
		select {
		case <-ctx.Done():
			return
		case <-deadline.C:
			return
		case <-s.done:
			return
		case <-tick.C:
		}
	}
}

// Close stops serving: the event streams end, the listener closes, and
// the diagnosis so far stops (a diagnosis under way is let finish).
func (s *Server) Close() error {
	var err error
	s.once.Do(func() {
		close(s.done)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if s.srv != nil {
			if err = s.srv.Shutdown(ctx); err != nil {
				err = s.srv.Close()
			}
		}
		s.wg.Wait()
	})
	return err
}
