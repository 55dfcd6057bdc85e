package evloop

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Design.
//
// One goroutine, locked to its thread, owns every user and socket; other
// goroutines only set the number of users wanted and wake it through an
// eventfd. Sockets are non-blocking and level-triggered: a socket is
// registered for EPOLLOUT while it connects or has a request partly
// written, for EPOLLIN otherwise, so a kept connection costs no epoll_ctl
// per request. Level rather than edge triggering because an edge would
// oblige reading until EAGAIN to be sure nothing is left, a second read
// per request, where here one read that fills less than the buffer ends
// the turn and epoll says if more arrives (wrk's ae loop is level-triggered
// too).
//
// A pass of the loop: wait for events (as long as the next timer allows),
// read each ready socket once into the one 64 KiB buffer and feed its
// user's parser, then expire the timers due and write the next request of
// every user whose response completed. Timers: the request deadlines are
// start + Timeout, so they expire in the order requests started, and a FIFO
// list is a priority queue with O(1) insertion and removal; the same holds
// for dials (start + min(Timeout, 10 s)); think times vary, and sit in a
// binary heap. epoll_wait's timeout is the earliest of the three heads,
// rounded up to the millisecond.

// readBufSize is the loop's read buffer: one per loop, since a response is
// parsed as it arrives and only a partial line (pooled) outlives a read.
const readBufSize = 64 << 10

// maxReads bounds the reads of one socket in a pass, so that a large body
// cannot hold up the other users: 1 MiB.
const maxReads = 16

// maxEvents is the events one epoll_wait can return.
const maxEvents = 512

// wakeData marks the eventfd's events (users' are their index, from 0).
const wakeData = -1

// wakeOne is the eventfd counter increment of a wake-up.
var wakeOne = func() (b [8]byte) {
	binary.NativeEndian.PutUint64(b[:], 1)
	return b
}()

// ustate is where a user is.
type ustate uint8

const (
	usOff     ustate = iota // not running
	usQueued                // in the run queue: its next request starts in this pass
	usThink                 // thinking, in the heap
	usConnect               // dialling
	usWrite                 // request partly written
	usRead                  // waiting for (the rest of) the response
)

// link is a user's place in a fifo.
type link struct{ prev, next *user }

// fifo is an intrusive doubly linked list of users, through their links[k].
type fifo struct {
	head, tail *user
	k          int
}

func (f *fifo) push(u *user) {
	lk := &u.links[f.k]
	lk.prev, lk.next = f.tail, nil
	if f.tail != nil {
		f.tail.links[f.k].next = u
	} else {
		f.head = u
	}
	f.tail = u
}

func (f *fifo) remove(u *user) {
	lk := &u.links[f.k]
	if lk.prev != nil {
		lk.prev.links[f.k].next = lk.next
	} else {
		f.head = lk.next
	}
	if lk.next != nil {
		lk.next.links[f.k].prev = lk.prev
	} else {
		f.tail = lk.prev
	}
	lk.prev, lk.next = nil, nil
}

// user is one virtual user and its connection. Times are since the loop's
// base.
type user struct {
	n      int   // number, from 1
	idx    int32 // n-1: the data of its socket's events
	gen    int32 // connection number: the other data, telling stale events
	fd     int   // -1: no connection
	st     ustate
	events uint32 // what the socket is registered for; 0: not registered
	addr0  int    // the address the dial under way tried first
	try    int    // addresses it tried since
	sent   int    // bytes of the request written
	req    []byte // the request under way: Config.Request, or the Driver's
	to     *Dest  // where it goes; conn: where the connection goes
	conn   *Dest

	reused  bool // the request went over a kept connection
	retried bool // the request was sent again on a new connection
	got     bool // a byte of the response has arrived
	inReq   bool // in the deadline list
	inDial  bool // in the dial list

	start, connStart, wrote, first time.Duration
	connect                        time.Duration
	deadline, dialDeadline, wake   time.Duration
	heapIdx                        int
	// rest is what is left of a pause after its first IdleClose, at whose
	// end the connection closes: above 0 a think time's rest, below 0 a
	// hold's (until the end); 0 when the pause ends at wake.
	rest time.Duration

	links [2]link // in the deadline list, in the dial list
	p     parser
}

// dialMax caps a dial's time, as session.FastClient's dialer does.
const dialMax = 10 * time.Second

// errRunning is Run called while another Run of the same Loop is under way.
var errRunning = errors.New("evloop: Run is already running")

// Errors of the connection, as values so that the hot path formats nothing.
var (
	// errNoResponse is a connection ending before the first response byte.
	errNoResponse = fmt.Errorf("evloop: read response: %w", io.EOF)
	// Timeouts wrap os.ErrDeadlineExceeded, a net.Error whose Timeout()
	// is true, as a net.Conn's deadline does: session.IsTimeout and
	// errors.Is(err, os.ErrDeadlineExceeded) hold.
	errDialTimeout  = fmt.Errorf("evloop: dial: %w", os.ErrDeadlineExceeded)
	errWriteTimeout = fmt.Errorf("evloop: write request: %w", os.ErrDeadlineExceeded)
)

// target is an address to dial.
type target struct {
	sa     unix.Sockaddr
	family int
}

// sys is the Linux state of a Loop, used by its goroutine only but for
// running, mu and wakeFD.
type sys struct {
	cfg     Config
	timeout time.Duration
	running atomic.Bool
	// mu guards wakeFD, by which other goroutines wake the loop, against
	// its closing at the end of Run.
	mu     sync.Mutex
	wakeFD int // -1 when no Run is under way

	dest *Dest // Config.Addr's
	base time.Time
	epfd int
	efd  int

	users   []*user
	synced  int     // users wanted, as of the last look at want
	runq    []*user // users whose next request starts in this pass
	spare   []*user
	reqs    fifo    // requests under way, by deadline
	dials   fifo    // dials under way, by deadline
	thinks  []*user // min-heap by wake
	nflight int

	buf     []byte
	events  []unix.EpollEvent
	carries carryPool
	drain   [8]byte
}

// New returns a loop for cfg, without users (see SetUsers). A host name in
// cfg.Addr is resolved now; the loop dials its addresses in turn, starting
// with the one that answered last.
func New(cfg Config) (*Loop, error) {
	timeout, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	aps, err := resolve(cfg.Addr)
	if err != nil {
		return nil, err
	}
	l := &Loop{sys: sys{cfg: cfg, timeout: timeout, wakeFD: -1}}
	if l.dest, err = newDest(cfg.Addr, aps); err != nil {
		return nil, err
	}
	l.epfd, l.efd = -1, -1
	l.reqs.k, l.dials.k = 0, 1
	l.buf = make([]byte, readBufSize)
	l.events = make([]unix.EpollEvent, maxEvents)
	return l, nil
}

// destSys is the Linux part of a Dest.
type destSys struct {
	addrs   []target
	primary int // the address that answered last
}

// newDest returns the Dest of addr at aps.
func newDest(addr string, aps []netip.AddrPort) (*Dest, error) {
	d := &Dest{addr: addr}
	for _, ap := range aps {
		sa, family, err := sockaddr(ap.Addr(), ap.Port())
		if err != nil {
			return nil, err
		}
		d.sys.addrs = append(d.sys.addrs, target{sa, family})
	}
	return d, nil
}

// Dest returns the destination host:port addr, resolved now (a host name
// blocks the caller for its lookup: a Driver should keep what it gets).
// Config.Addr's is the loop's own. It may be called from any goroutine.
func (l *Loop) Dest(addr string) (*Dest, error) {
	if addr == l.dest.addr {
		return l.dest, nil
	}
	aps, err := resolve(addr)
	if err != nil {
		return nil, err
	}
	return newDest(addr, aps)
}

// resolve returns the addresses of host:port addr.
func resolve(addr string) ([]netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		return []netip.AddrPort{netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())}, nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("evloop: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), dialMax)
	defer cancel()
	p, err := net.DefaultResolver.LookupPort(ctx, "tcp", port)
	if err != nil {
		return nil, fmt.Errorf("evloop: %w", err)
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, fmt.Errorf("evloop: %w", err)
	}
	aps := make([]netip.AddrPort, 0, len(ips))
	for _, ip := range ips {
		aps = append(aps, netip.AddrPortFrom(ip.Unmap(), uint16(p)))
	}
	if len(aps) == 0 {
		return nil, fmt.Errorf("evloop: no address for %s", host)
	}
	return aps, nil
}

// sockaddr converts an address.
func sockaddr(a netip.Addr, port uint16) (unix.Sockaddr, int, error) {
	if a.Is4() {
		return &unix.SockaddrInet4{Port: int(port), Addr: a.As4()}, unix.AF_INET, nil
	}
	sa := &unix.SockaddrInet6{Port: int(port), Addr: a.As16()}
	if z := a.Zone(); z != "" {
		if n, err := strconv.Atoi(z); err == nil {
			sa.ZoneId = uint32(n)
		} else {
			ifi, err := net.InterfaceByName(z)
			if err != nil {
				return nil, 0, fmt.Errorf("evloop: zone of %s: %w", a, err)
			}
			sa.ZoneId = uint32(ifi.Index)
		}
	}
	return sa, unix.AF_INET6, nil
}

// Run runs the users until ctx ends, then closes every connection and
// returns nil; the requests cut off are counted by Aborted. It returns an
// error only when the loop cannot work (epoll failing). Runs of a loop
// must not overlap.
func (l *Loop) Run(ctx context.Context) error {
	if !l.running.CompareAndSwap(false, true) {
		return errRunning
	}
	defer l.running.Store(false)
	if ctx.Err() != nil {
		return nil
	}
	// The loop blocks in epoll_wait rather than in the scheduler: a thread
	// of its own spares it migrations between threads.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return fmt.Errorf("evloop: %w", os.NewSyscallError("epoll_create1", err))
	}
	defer unix.Close(epfd)
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return fmt.Errorf("evloop: %w", os.NewSyscallError("eventfd", err))
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: wakeData}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, efd, &ev); err != nil {
		unix.Close(efd)
		return fmt.Errorf("evloop: %w", os.NewSyscallError("epoll_ctl", err))
	}
	l.epfd, l.efd = epfd, efd
	l.mu.Lock()
	l.wakeFD = efd
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		l.wakeFD = -1
		unix.Close(efd)
		l.mu.Unlock()
		l.epfd, l.efd = -1, -1
	}()

	// The loop looks at ctx at every pass; the callback wakes it from
	// epoll_wait.
	stop := context.AfterFunc(ctx, l.wake)
	defer stop()

	l.base = time.Now()
	err = l.loop(ctx.Done())
	l.shutdown()
	return err
}

// wake interrupts the loop's epoll_wait, if a Run is under way.
func (s *sys) wake() {
	s.mu.Lock()
	if s.wakeFD >= 0 {
		// EAGAIN means the counter is full: the loop will wake all the same.
		_, _ = unix.Write(s.wakeFD, wakeOne[:])
	}
	s.mu.Unlock()
}

// isDone reports whether done is closed, without blocking.
func isDone(done <-chan struct{}) bool {
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// now returns the time since the loop's base (monotonic).
func (l *Loop) now() time.Duration { return time.Since(l.base) }

// loop runs passes until done is closed.
func (l *Loop) loop(done <-chan struct{}) error {
	if l.cfg.OnPass != nil {
		defer l.cfg.OnPass() // the results of the last pass
	}
	l.sync()
	var woke time.Duration // when epoll_wait returned
	for !isDone(done) {
		now := l.now()
		l.expire(now)
		l.runQueue(now)
		l.inflight.Store(int64(l.nflight))
		if l.cfg.OnPass != nil {
			l.cfg.OnPass()
		}
		if woke > 0 {
			if turn := l.now() - woke; turn > time.Duration(l.maxTurn.Load()) {
				l.maxTurn.Store(int64(turn))
			}
		}
		n, err := l.wait()
		woke = l.now()
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			return fmt.Errorf("evloop: %w", os.NewSyscallError("epoll_wait", err))
		}
		for i := range n {
			ev := &l.events[i]
			if ev.Fd == wakeData {
				_, _ = unix.Read(l.efd, l.drain[:]) // resets the counter
				l.sync()
				continue
			}
			u := l.users[ev.Fd]
			if u.gen != ev.Pad || u.fd < 0 {
				continue // an event of a connection closed in this pass
			}
			switch u.st {
			case usConnect:
				l.connected(u)
			case usWrite:
				l.send(u)
			case usRead:
				l.read(u)
			case usQueued, usThink:
				l.idle(u)
			}
		}
	}
	return nil
}

// keptWaitMax is the longest wait of a loop that keeps its P (Config.KeepP),
// in milliseconds.
const keptWaitMax = 10

// wait waits for events, up to waitTime, as Config.KeepP says.
func (l *Loop) wait() (int, error) {
	ms := l.waitTime()
	if !l.cfg.KeepP {
		return unix.EpollWait(l.epfd, l.events, ms)
	}
	if ms < 0 || ms > keptWaitMax {
		ms = keptWaitMax
	}
	r, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(l.epfd), uintptr(unsafe.Pointer(unsafe.SliceData(l.events))), uintptr(len(l.events)), uintptr(ms), 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// waitTime returns epoll_wait's timeout in milliseconds: until the earliest
// timer, rounded up; 0 when users are queued; -1 (no limit) without timers.
func (l *Loop) waitTime() int {
	if len(l.runq) > 0 {
		return 0
	}
	next := time.Duration(math.MaxInt64)
	if u := l.reqs.head; u != nil {
		next = u.deadline
	}
	if u := l.dials.head; u != nil && u.dialDeadline < next {
		next = u.dialDeadline
	}
	if len(l.thinks) > 0 && l.thinks[0].wake < next {
		next = l.thinks[0].wake
	}
	if next == math.MaxInt64 {
		return -1
	}
	d := next - l.now()
	if d <= 0 {
		return 0
	}
	return int(min((d+time.Millisecond-1)/time.Millisecond, math.MaxInt32))
}

// sync applies the number of users wanted: users above it stop after their
// request under way (see next), users up to it start.
func (l *Loop) sync() {
	want := int(l.want.Load())
	old := l.synced
	l.synced = want
	for n := old + 1; n <= want; n++ {
		for len(l.users) < n {
			i := len(l.users)
			l.users = append(l.users, &user{n: i + 1, idx: int32(i), fd: -1, heapIdx: -1, req: l.cfg.Request, to: l.dest})
			l.users[i].p.reset(&l.carries)
		}
		if u := l.users[n-1]; u.st == usOff {
			l.queue(u)
		}
		// Otherwise it was told to stop and has not yet: it goes on.
	}
	for n := want + 1; n <= old; n++ {
		if u := l.users[n-1]; u.st == usThink {
			if u.heapIdx >= 0 {
				l.thinkRemove(u)
			}
			l.stopUser(u)
		}
	}
}

// queue puts u in the run queue.
func (l *Loop) queue(u *user) {
	u.st = usQueued
	l.runq = append(l.runq, u)
}

// stopUser ends u's run.
func (l *Loop) stopUser(u *user) {
	l.closeConn(u)
	u.st = usOff
	u.rest = 0
	if d := l.cfg.Driver; d != nil {
		d.Stop(u.n)
	}
}

// pause sends u to a pause of d from now (see Driver.Next): the next pass
// for 0, the end of the run below 0. With IdleClose, a pause longer than
// it closes the connection once it has been idle that long.
func (l *Loop) pause(u *user, now, d time.Duration) {
	idle := l.cfg.IdleClose
	switch {
	case d == 0:
		l.queue(u)
		return
	case d < 0 && (idle <= 0 || u.fd < 0):
		u.st = usThink // held, in no heap: only the end of the run or SetUsers ends it
		return
	case idle > 0 && u.fd >= 0 && (d < 0 || d > idle):
		u.rest = d
		if d > 0 {
			u.rest = d - idle
		}
		d = idle
	}
	u.wake = now + d
	u.st = usThink
	l.thinkPush(u)
}

// expire fails the requests past their deadline and queues the users whose
// think time is over.
func (l *Loop) expire(now time.Duration) {
	for u := l.reqs.head; u != nil && u.deadline <= now; u = l.reqs.head {
		l.timedOut(u)
	}
	for u := l.dials.head; u != nil && u.dialDeadline <= now; u = l.dials.head {
		l.timedOut(u)
	}
	for len(l.thinks) > 0 && l.thinks[0].wake <= now {
		u := l.thinks[0]
		l.thinkRemove(u)
		if rest := u.rest; rest != 0 {
			// Idle for IdleClose: the connection closes, the pause goes on.
			u.rest = 0
			l.closeConn(u)
			if rest < 0 {
				continue // held until the end, in no heap
			}
			u.wake += rest
			l.thinkPush(u)
			continue
		}
		l.queue(u)
	}
}

// timedOut fails u's request for its deadline.
func (l *Loop) timedOut(u *user) {
	var err error
	switch {
	case u.st == usConnect:
		err = errDialTimeout
	case u.st == usWrite:
		err = errWriteTimeout
	case !u.got:
		err = errResponseTimeout
	default:
		err = u.p.end(os.ErrDeadlineExceeded)
		if err == nil {
			err = errBodyTimeout // cannot happen: only the end of the stream completes a response
		}
	}
	l.fail(u, err)
}

// runQueue starts the next request of the queued users. Each starts when
// the previous one's write has returned, so that its latency does not
// include the loop's turn.
func (l *Loop) runQueue(now time.Duration) {
	q := l.runq
	l.runq = l.spare[:0]
	t := now
	for _, u := range q {
		if u.st != usQueued {
			continue
		}
		stopping := u.n > l.synced
		if d := l.cfg.Driver; d != nil {
			req, to, pause := d.Next(u.n, stopping)
			if req == nil {
				if stopping {
					l.stopUser(u)
				} else {
					l.pause(u, t, pause)
				}
				continue
			}
			u.req, u.to = req, l.destOr(to)
		} else if stopping {
			l.stopUser(u)
			continue
		}
		t = l.start(u, t)
	}
	clear(q)
	l.spare = q[:0]
}

// start begins a request of u at t and returns the time after its first
// system calls.
func (l *Loop) start(u *user, t time.Duration) time.Duration {
	u.start = t
	u.deadline = t + l.timeout
	l.reqs.push(u)
	u.inReq = true
	l.nflight++
	u.connect = 0
	if u.fd >= 0 && u.conn != u.to {
		l.closeConn(u) // a connection to elsewhere
	}
	if u.fd < 0 {
		l.dial(u, t)
		return l.now()
	}
	u.reused = true
	return l.send(u)
}

// destOr returns d, or the loop's own Dest when d is nil.
func (l *Loop) destOr(d *Dest) *Dest {
	if d == nil {
		return l.dest
	}
	return d
}

// dial starts connecting u at now.
func (l *Loop) dial(u *user, now time.Duration) {
	u.reused = false
	u.connStart = now
	u.dialDeadline = now + min(l.timeout, dialMax)
	l.dials.push(u)
	u.inDial = true
	u.addr0, u.try = u.to.sys.primary, 0
	u.conn = u.to
	l.connectNext(u)
}

// connectNext connects u to the first address left to try; when none is
// left, the dial fails with lastErr.
func (l *Loop) connectNext(u *user) {
	var from netip.Addr
	if l.cfg.From != nil {
		from = l.cfg.From(u.n).Unmap()
	}
	var lastErr error
	addrs := u.to.sys.addrs
	for ; u.try < len(addrs); u.try++ {
		a := &addrs[(u.addr0+u.try)%len(addrs)]
		if from.IsValid() && from.Is4() != (a.family == unix.AF_INET) {
			// A source address dials targets of its own family only.
			if lastErr == nil {
				lastErr = fmt.Errorf("no address of the family of source address %s", from)
			}
			continue
		}
		err := l.connect(u, a, from)
		if err == nil {
			return
		}
		lastErr = err
	}
	l.fail(u, fmt.Errorf("evloop: dial: %w", lastErr))
}

// connect opens u's socket and connects it to a, from the source address
// from when valid.
func (l *Loop) connect(u *user, a *target, from netip.Addr) error {
	fd, err := unix.Socket(a.family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("socket", err)
	}
	// As net.Dialer{KeepAlive: 30 * time.Second} does. Failures leave the
	// system's defaults, which work.
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1)
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, 30)
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, 30)
	if from.IsValid() {
		// The source port is chosen at connect, per destination, as
		// session's bindNoPort does (an older kernel refuses the option
		// and binds as usual).
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
		sa, _, err := sockaddr(from, 0)
		if err == nil {
			err = unix.Bind(fd, sa)
			if err != nil {
				err = os.NewSyscallError("bind", err)
			}
		}
		if err != nil {
			unix.Close(fd)
			return err
		}
	}
	err = unix.Connect(fd, a.sa)
	if err != nil && err != unix.EINPROGRESS {
		unix.Close(fd)
		return os.NewSyscallError("connect", err)
	}
	u.fd = fd
	u.gen++
	u.events = 0
	u.st = usConnect
	// Connected at once or not, epoll says when it is writable.
	if err := l.arm(u, unix.EPOLLOUT); err != nil {
		l.closeConn(u)
		return err
	}
	return nil
}

// arm registers u's socket for events, if not already.
func (l *Loop) arm(u *user, events uint32) error {
	if u.events == events {
		return nil
	}
	op := unix.EPOLL_CTL_MOD
	if u.events == 0 {
		op = unix.EPOLL_CTL_ADD
	}
	ev := unix.EpollEvent{Events: events, Fd: u.idx, Pad: u.gen}
	if err := unix.EpollCtl(l.epfd, op, u.fd, &ev); err != nil {
		return os.NewSyscallError("epoll_ctl", err)
	}
	u.events = events
	return nil
}

// connected handles the end of u's connect.
func (l *Loop) connected(u *user) {
	errno, err := unix.GetsockoptInt(u.fd, unix.SOL_SOCKET, unix.SO_ERROR)
	switch {
	case err != nil:
		err = os.NewSyscallError("getsockopt", err)
	case errno != 0:
		err = os.NewSyscallError("connect", unix.Errno(errno))
	}
	if err != nil {
		l.closeConn(u)
		u.try++
		if u.try < len(u.to.sys.addrs) {
			l.connectNext(u)
		} else {
			l.fail(u, fmt.Errorf("evloop: dial: %w", err))
		}
		return
	}
	u.to.sys.primary = (u.addr0 + u.try) % len(u.to.sys.addrs)
	l.dials.remove(u)
	u.inDial = false
	u.connect = l.now() - u.connStart
	l.send(u)
}

// send writes (the rest of) u's request and returns the time after.
func (l *Loop) send(u *user) time.Duration {
	req := u.req
	n, err := rawWrite(u.fd, req[u.sent:])
	for err == unix.EINTR {
		n, err = rawWrite(u.fd, req[u.sent:])
	}
	if err == unix.EAGAIN {
		n, err = 0, nil
	}
	now := l.now()
	if err != nil {
		if u.reused && !u.retried && stale(err) {
			l.redial(u, now)
		} else {
			l.fail(u, fmt.Errorf("evloop: write request: %w", os.NewSyscallError("write", err)))
		}
		return now
	}
	u.sent += n
	if u.sent < len(req) {
		// The socket's buffer is full (a large request): wait until it is
		// writable again, not readable meanwhile.
		if err := l.arm(u, unix.EPOLLOUT); err != nil {
			l.fail(u, fmt.Errorf("evloop: write request: %w", err))
			return now
		}
		u.st = usWrite
		return now
	}
	if err := l.arm(u, unix.EPOLLIN); err != nil {
		l.fail(u, fmt.Errorf("evloop: write request: %w", err))
		return now
	}
	u.wrote = now
	u.st = usRead
	return now
}

// stale reports whether err is how a kept connection closed by the server
// fails: reset, broken pipe (end of stream is a read of 0 bytes).
func stale(err error) bool {
	return err == unix.ECONNRESET || err == unix.EPIPE || err == unix.ECONNABORTED
}

// redial sends u's request again on a new connection, once, when the kept
// one turned out closed by the server before any response byte.
func (l *Loop) redial(u *user, now time.Duration) {
	l.closeConn(u)
	u.retried = true
	u.sent = 0
	l.dial(u, now)
}

// read reads from u's socket and feeds its parser.
func (l *Loop) read(u *user) {
	for range maxReads {
		n, err := rawRead(u.fd, l.buf)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			return
		}
		if err != nil || n <= 0 {
			now := l.now()
			var rerr error // nil: end of stream
			if err != nil {
				rerr = os.NewSyscallError("read", err)
			}
			if !u.got {
				// Nothing of a response has arrived: if the kept connection
				// had been closed by the server while idle, try a fresh
				// one, once.
				switch {
				case u.reused && !u.retried && (err == nil || stale(err)):
					l.redial(u, now)
				case err == nil:
					l.fail(u, errNoResponse)
				default:
					l.fail(u, responseErr(rerr))
				}
				return
			}
			if perr := u.p.end(rerr); perr != nil {
				l.fail(u, perr)
				return
			}
			l.complete(u, now, false)
			return
		}
		now := l.now()
		if !u.got {
			u.got = true
			u.first = now
		}
		used, perr := u.p.feedTo(l.buf[:n], &l.carries, l.cfg.Driver, u.n)
		if perr != nil {
			l.fail(u, perr)
			return
		}
		if u.p.done() {
			// Bytes after the response were never asked for: the
			// connection is out of step with the requests.
			l.complete(u, now, used < n)
			return
		}
		if n < len(l.buf) {
			return
		}
	}
}

// idle handles an event on the kept connection of a user between requests:
// bytes never asked for, the server closing it, or an error. Either way
// the connection is done for; the next request dials.
func (l *Loop) idle(u *user) {
	_, err := rawRead(u.fd, l.buf)
	if err == unix.EAGAIN || err == unix.EINTR {
		return
	}
	l.closeConn(u)
}

// complete reports u's successful request, ended at now.
func (l *Loop) complete(u *user, now time.Duration, extra bool) {
	r := Result{
		User:    u.n,
		Start:   l.base.Add(u.start),
		Latency: now - u.start,
		Status:  int(u.p.status),
		Size:    u.p.size,
		Connect: u.connect,
		TTFB:    u.first - u.wrote,
		Reused:  u.reused,
	}
	if extra || !u.p.keep() {
		l.closeConn(u)
	}
	if d := l.cfg.Driver; d != nil {
		l.endHop(u)
		if hop, to := d.Done(r); hop != nil {
			// The next hop of the same exchange: same start, same deadline.
			u.req, u.to = hop, l.destOr(to)
			u.connect = 0
			if u.fd >= 0 && u.conn != u.to {
				l.closeConn(u)
			}
			if u.fd < 0 {
				l.dial(u, now)
				return
			}
			u.reused = true
			l.send(u)
			return
		}
		l.endRequest(u)
		l.next(u, now)
		return
	}
	l.endRequest(u)
	if l.cfg.OnResult != nil {
		l.cfg.OnResult(r)
	}
	l.next(u, now)
}

// fail reports u's failed request and closes its connection.
func (l *Loop) fail(u *user, err error) {
	now := l.now()
	r := Result{
		User:    u.n,
		Start:   l.base.Add(u.start),
		Latency: now - u.start,
		Connect: u.connect,
		Reused:  u.reused,
		Err:     err,
	}
	if u.got {
		r.TTFB = u.first - u.wrote
	}
	l.closeConn(u)
	l.endRequest(u)
	if d := l.cfg.Driver; d != nil {
		_, _ = d.Done(r) // a failure ends the exchange
	} else if l.cfg.OnResult != nil {
		l.cfg.OnResult(r)
	}
	l.next(u, now)
}

// endRequest clears the state of u's request.
func (l *Loop) endRequest(u *user) {
	if u.inReq {
		l.reqs.remove(u)
		u.inReq = false
		l.nflight--
	}
	if u.inDial {
		l.dials.remove(u)
		u.inDial = false
	}
	l.endHop(u)
}

// endHop clears the state of u's request that a next hop starts afresh.
func (l *Loop) endHop(u *user) {
	u.p.reset(&l.carries)
	u.sent = 0
	u.got, u.retried = false, false
}

// next sends u to its think time, the run queue, or its stop.
func (l *Loop) next(u *user, now time.Duration) {
	if l.cfg.Driver != nil {
		// Next, in runQueue, says whether it sends, pauses or (stopping)
		// stops.
		l.queue(u)
		return
	}
	if u.n > l.synced {
		l.stopUser(u)
		return
	}
	if l.cfg.Think != nil {
		if d := l.cfg.Think(); d > 0 {
			u.wake = now + d
			u.st = usThink
			l.thinkPush(u)
			return
		}
	}
	l.queue(u)
}

// closeConn closes u's connection, if any; closing removes it from epoll.
func (l *Loop) closeConn(u *user) {
	if u.fd >= 0 {
		unix.Close(u.fd)
		u.fd = -1
		u.events = 0
	}
}

// shutdown ends every user at the end of Run, counting the requests cut
// off.
func (l *Loop) shutdown() {
	var cut int64
	for _, u := range l.users {
		switch u.st {
		case usConnect, usWrite, usRead:
			cut++
		}
		if d := l.cfg.Driver; d != nil && u.st != usOff {
			d.Stop(u.n)
		}
		u.rest = 0
		l.closeConn(u)
		u.inReq, u.inDial = false, false
		u.links = [2]link{}
		u.heapIdx = -1
		u.p.reset(&l.carries)
		u.sent = 0
		u.got, u.retried = false, false
		u.st = usOff
	}
	l.aborted.Add(cut)
	l.reqs = fifo{k: 0}
	l.dials = fifo{k: 1}
	clear(l.thinks)
	l.thinks = l.thinks[:0]
	clear(l.runq)
	l.runq = l.runq[:0]
	l.nflight, l.synced = 0, 0
	l.inflight.Store(0)
}

// The think-time heap.

func (l *Loop) thinkPush(u *user) {
	u.heapIdx = len(l.thinks)
	l.thinks = append(l.thinks, u)
	l.siftUp(u.heapIdx)
}

func (l *Loop) thinkRemove(u *user) {
	i := u.heapIdx
	last := len(l.thinks) - 1
	if i != last {
		l.swap(i, last)
	}
	l.thinks[last] = nil
	l.thinks = l.thinks[:last]
	u.heapIdx = -1
	if i != last {
		l.siftDown(i)
		l.siftUp(i)
	}
}

func (l *Loop) swap(i, j int) {
	h := l.thinks
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx, h[j].heapIdx = i, j
}

func (l *Loop) siftUp(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if l.thinks[p].wake <= l.thinks[i].wake {
			return
		}
		l.swap(i, p)
		i = p
	}
}

func (l *Loop) siftDown(i int) {
	h := l.thinks
	for {
		c := 2*i + 1
		if c >= len(h) {
			return
		}
		if c+1 < len(h) && h[c+1].wake < h[c].wake {
			c++
		}
		if h[i].wake <= h[c].wake {
			return
		}
		l.swap(i, c)
		i = c
	}
}

// rawRead and rawWrite are read(2) and write(2) on a user's socket without
// telling the scheduler of a system call (RawSyscall): the socket is
// non-blocking, so the call returns in microseconds and the thread has no
// P to hand over meanwhile, and entersyscall and exitsyscall were 3% of
// the loop's CPU (profile of the quick form against nginx). Their errors
// are unix.Errno values, compared with == as unix.Read's and unix.Write's
// are (an Errno under 256 goes into an interface without allocating).
func rawRead(fd int, p []byte) (int, error) {
	r, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

func rawWrite(fd int, p []byte) (int, error) {
	r, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}
