// Package evloop runs the quick form's virtual users (`stampede run --url
// URL -u N`) on one event loop instead of one goroutine each: every user
// sends a GET, reads the whole response, optionally thinks, and sends the
// next, as session.FastClient does, with the same parsing, limits and
// errors.
//
// Why: with a goroutine per user, each request costs a read returning
// EAGAIN, a goroutine park, and the netpoller's epoll_wait and wake-up;
// wrk's event loop writes, waits once for many ready sockets, reads each
// and writes the next request. Here too, in steady state a request costs
// one write, one read and a share of one epoll_wait, and allocates nothing.
//
// Why direct epoll (golang.org/x/sys/unix, Linux only) rather than a
// library: evio, gnet and cloudwego/netpoll are built for servers. The one
// well-kept client among them, gnet v2's gnet.Client, dials with a blocking
// net.Dial (a dial would stall the loop, or need a goroutine of its own),
// keeps ring buffers per connection where one shared read buffer does
// here, has no per-connection deadline (one engine-wide ticker), and brings
// errgroup and zap along; netpoll's client connections are read by
// goroutines its poller wakes, the very cost avoided here. What is needed
// fits in about a thousand lines, the parser included. On other systems New
// returns an error and the caller keeps its FastClient goroutines.
package evloop

import (
	"errors"
	"net/netip"
	"sync/atomic"
	"time"
)

// Config configures a Loop. Addr and Request are required.
type Config struct {
	// Addr is the host:port to dial, already mapped (session.Hosts). A
	// host name is resolved once, by New.
	Addr string
	// Request is the whole GET request, written as it is on every request
	// (session.FastClient builds the same).
	Request []byte
	// Timeout bounds each request, dial included; 0 or less means 60 s. A
	// dial alone is also bounded by 10 s, as FastClient's.
	Timeout time.Duration
	// Think, when not nil, gives the pause of a user after each response
	// (success or failure) before its next request. Called on the loop's
	// goroutine.
	Think func() time.Duration
	// From, when not nil, gives the source address of a user's connections
	// (numbered from 1); the zero Addr leaves the choice to the system.
	// Called on the loop's goroutine at each dial.
	From func(user int) netip.Addr
	// OnResult, when not nil, is called on the loop's goroutine after every
	// request, success or failure, but not for the requests cut off by the
	// end of Run. It holds up every user while it runs: it should hand the
	// result on and return.
	OnResult func(r Result)
	// OnPass, when not nil, is called on the loop's goroutine at the end of
	// each pass over the ready sockets and due timers, before the loop
	// waits for more: a caller that gathers OnResult's results hands them
	// on here in one go, waking its consumer once a pass rather than once a
	// request (a wake-up costs a futex call and a switch on another CPU, as
	// much as a request's own work).
	OnPass func()
	// Driver, when not nil, runs users whose requests differ from one to
	// the next (a browser's: its cookies, forms and redirects): it gives
	// each request and is told each response, in place of Request, Think
	// and OnResult, which are then unused.
	Driver Driver
	// IdleClose, when above 0, closes the connection of a user pausing
	// longer than it once it has been idle that long (a browser's idle
	// timeout): the next request dials. With a Driver only.
	IdleClose time.Duration
	// KeepP makes the loop wait for events in a system call that Go's
	// scheduler does not see (as its reads and writes are): the loop keeps
	// its P while it waits. A wait the scheduler sees lets sysmon take the
	// P from the loop's thread once it has waited 20 µs, and the loop take
	// one back on waking: when the loop waits after most responses (its
	// target the slower), that hand-over, and sysmon waking every 20 µs to
	// make it, cost as much as the loop's own work. Set it only when the
	// process has a P for its other goroutines besides the loops' (the
	// loops' users, load.loopProcs); a wait is then at most 10 ms, so that
	// a stop of the world that cannot signal the loop's thread waits no
	// longer. Linux only; elsewhere there is no loop.
	KeepP bool
}

// Driver runs users whose requests differ (Config.Driver). Its methods are
// called on the loop's goroutine, one at a time; users are numbered from 1.
type Driver interface {
	// Next is called when user is to go on: at its start, at the end of
	// its pause, and after a request that Done did not follow with a hop.
	// It returns the request to send now (its bytes left unchanged until
	// Done is called for it) and where to (nil: Config.Addr); or nil and
	// the pause before Next is called again: 0 in the loop's next pass,
	// below 0 not before the end of the run (the user holds its session,
	// and its connection until IdleClose). stopping says the user is to
	// stop (SetUsers): it stops unless Next returns a request, which it
	// should only to finish what it is in the middle of.
	Next(user int, stopping bool) (req []byte, to *Dest, pause time.Duration)
	// Field is called with each header field of the final (not 1xx)
	// response under way, its value trimmed; the slices are valid during
	// the call only. A field line longer than 4 KiB is skipped unseen.
	Field(user int, name, value []byte)
	// Body is called with the response's body bytes as they arrive, after
	// chunked decoding; valid during the call only.
	Body(user int, p []byte)
	// Done ends every request, success or failure (r.Err). A request it
	// returns (after a success) is sent at once, to to (nil: Config.Addr),
	// as the next hop of the same exchange, a redirect: over the same
	// connection when the response left it open and to is where it goes,
	// under the same deadline, and the next Result counts its latency from
	// the exchange's start.
	Done(r Result) (hop []byte, to *Dest)
	// Stop is called when a user stops (SetUsers, or the end of Run); it
	// starts afresh if started again.
	Stop(user int)
}

// Dest is an address users' requests go to, other than Config.Addr (see
// Loop.Dest); a user's connection is to one Dest at a time.
type Dest struct {
	addr string
	sys  destSys // per operating system
}

// Result is the outcome of one request.
type Result struct {
	User    int           // from 1
	Start   time.Time     // when the request began: its dial, if any, or its write
	Latency time.Duration // from Start to the end of the response or the failure
	Status  int           // 0 on failure
	Size    int64         // body bytes after chunked decoding
	// Connect is the time spent dialling (the redial, after a kept
	// connection was found closed); 0 on a reused connection.
	Connect time.Duration
	// TTFB runs from the request being written to the first response byte.
	TTFB time.Duration
	// Reused reports whether the request went over a kept-alive connection.
	Reused bool
	// Err is nil on success. Otherwise session.IsTimeout and
	// session.Describe apply to it: a timeout wraps os.ErrDeadlineExceeded;
	// a transport failure wraps the system's errno ("connection refused",
	// "connection reset by peer") or io.EOF / io.ErrUnexpectedEOF; a
	// malformed response has the text of session.FastClient's error.
	Err error
}

// Loop is an event loop running virtual users. Create it with New; set its
// users with SetUsers, before or during Run.
type Loop struct {
	want     atomic.Int64 // users asked for by SetUsers
	aborted  atomic.Int64
	inflight atomic.Int64
	maxTurn  atomic.Int64 // the longest turn since Turn, in ns

	sys // per operating system
}

// SetUsers sets the number of active users: users 1..n run. Users above n
// stop once their request under way, if any, has ended (and is reported);
// users thinking stop at once. It may be called from any goroutine, before
// or during Run.
func (l *Loop) SetUsers(n int) {
	l.want.Store(int64(max(n, 0)))
	l.wake()
}

// Aborted returns the number of requests under way when Run's context
// ended: they are not reported to OnResult (neither a success nor a
// failure). It counts over every Run of the loop.
func (l *Loop) Aborted() int64 { return l.aborted.Load() }

// Turn returns the longest turn of the loop since the last call and starts
// a new measure: the time from epoll_wait's return to the events of that
// pass handled, the timers due expired, the queued users' requests written
// and the results handed on (OnPass). A response that arrives meanwhile waits that long to be read, a
// user due to wake that long to be woken: the loop's own lag, which Go's
// timers (a process's usual self-watch) do not see.
func (l *Loop) Turn() time.Duration { return time.Duration(l.maxTurn.Swap(0)) }

// InFlight returns the number of requests under way (dialling, writing or
// waiting for their response), as of the loop's last pass.
func (l *Loop) InFlight() int { return int(l.inflight.Load()) }

// validate checks cfg and returns the timeout to use.
func (cfg *Config) validate() (time.Duration, error) {
	if cfg.Addr == "" {
		return 0, errors.New("evloop: no address")
	}
	if len(cfg.Request) == 0 && cfg.Driver == nil {
		return 0, errors.New("evloop: no request")
	}
	if cfg.Timeout <= 0 {
		return 60 * time.Second, nil
	}
	return cfg.Timeout, nil
}
