package session

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"net/textproto"
	"strings"
	"sync"
	"time"
)

// Limits and defaults of UserTransport.
const (
	// userIdleTimeout is the default IdleTimeout, as NewTransport's.
	userIdleTimeout = 90 * time.Second
	// userDialTimeout is the default DialTimeout, as NewTransport's; it
	// bounds the TLS handshake too.
	userDialTimeout = 10 * time.Second
	// userStaleAfter is how long a connection may sit idle before it is
	// checked for a close by the server before being reused.
	userStaleAfter = 500 * time.Millisecond
	// userMaxHeader caps the bytes read before a response's body starts,
	// interim 1xx responses included.
	userMaxHeader = 1 << 20
	// userMax1xx caps the interim responses before the final one, as
	// net/http does.
	userMax1xx = 5
	// userBufSize is the size of the pooled read and write buffers.
	userBufSize = 4 << 10
)

// The buffers of requests in flight. A virtual user in think time holds
// none: they come from these pools when a request starts and go back when
// its response body has been read.
var (
	userReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, userBufSize) }}
	userWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, userBufSize) }}
)

var (
	errUserBodyClosed  = errors.New("session: read on closed response body")
	errUserHeaderLarge = errors.New("session: response header too large")
	errUserSwitching   = errors.New("session: unexpected 101 Switching Protocols")
	errUserTooMany1xx  = errors.New("session: too many 1xx informational responses")
)

// UserTransport is one virtual user's HTTP/1.1 connections, one kept-alive
// connection per scheme+host:port.
//
// Unlike a net/http Transport it has no goroutine of its own: the request is
// written and the response read on the caller's goroutine, and a user in
// think time holds only its connection and an idle timer, not the two
// goroutines and 8 KB of buffers net/http keeps per idle connection. The
// wire format is net/http's (Request.Write, ReadResponse). It speaks
// HTTP/1.1 only, through no proxy, and asks for no compression (bodies are
// measured as served).
//
// It is safe for concurrent use, though a virtual user sends one request
// at a time: a request that finds the connection busy dials another one,
// closed after its response unless the first has gone.
type UserTransport struct {
	// The dialer is made at each dial rather than kept: a user in think
	// time does not hold its 150 bytes.
	dialTimeout time.Duration
	from        netip.Addr
	hosts       Hosts
	insecure    bool
	idle        time.Duration // 0 or less: no idle timer

	mu    sync.Mutex
	conns []*userConn // the idle connections, at most one per scheme and address
}

// UserTransportOptions configure a UserTransport. The zero value is valid.
type UserTransportOptions struct {
	// From is the source address to dial from (zero: system's choice).
	From netip.Addr
	// Hosts maps host names to the addresses to dial instead.
	Hosts Hosts
	// Insecure skips the verification of TLS certificates.
	Insecure bool
	// IdleTimeout closes a connection idle this long, by a timer, so that
	// the descriptor is released while the user thinks; 0 means 90 s, less
	// than 0 never.
	IdleTimeout time.Duration
	// DialTimeout bounds a dial, and a TLS handshake; 0 or less means 10 s.
	DialTimeout time.Duration
}

// NewUserTransport returns a transport that has no connection yet.
func NewUserTransport(o UserTransportOptions) *UserTransport {
	t := &UserTransport{dialTimeout: o.DialTimeout, from: o.From, hosts: o.Hosts, insecure: o.Insecure, idle: o.IdleTimeout}
	if t.idle == 0 {
		t.idle = userIdleTimeout
	}
	if t.dialTimeout <= 0 {
		t.dialTimeout = userDialTimeout
	}
	return t
}

// userConn is one connection of a UserTransport.
type userConn struct {
	t     *UserTransport
	conn  net.Conn // a *tls.Conn for https
	https bool
	addr  string // host:port of the URL, before Hosts mapping

	// Guarded by t.mu.
	idle      bool // in t.conns
	idleSince time.Time
	timer     *time.Timer // the idle timer, made at the first release
	seq       uint64      // bumped when a request ends: a late context callback leaves the next one alone

	// Owned by the request in flight.
	reused    bool
	br        *bufio.Reader // nil when no request is in flight
	bw        *bufio.Writer // nil but while the request is written
	wrote     bool          // some bytes of the request reached the connection
	werr      error         // the connection's write error
	readLimit int64         // bytes the response header may still take
	stop      func() bool   // stops the context callback
}

// RoundTrip sends one request and reads the response's header; the body is
// read from the connection as the caller reads it. When the request's
// context ends, the call, or the body's Read, returns promptly with an
// error for which errors.Is(err, ctx.Err()) holds.
//
// A kept-alive connection that the server has closed is redialled: one idle
// for more than half a second is checked before use, and a request that
// fails on a reused connection before any byte of response arrived is sent
// again, once, on a new connection if it can be replayed (net/http's rule:
// an idempotent method, or nothing written yet; a body is replayed through
// req.GetBody).
func (t *UserTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	u := req.URL
	if u == nil {
		closeReqBody(req)
		return nil, errors.New("session: request has no URL")
	}
	var https bool
	var port string
	switch u.Scheme {
	case "http":
		port = "80"
	case "https":
		https, port = true, "443"
	default:
		closeReqBody(req)
		return nil, fmt.Errorf("session: unsupported protocol scheme %q", u.Scheme)
	}
	host := u.Hostname()
	if host == "" {
		closeReqBody(req)
		return nil, errors.New("session: request URL has no host")
	}
	if p := u.Port(); p != "" {
		port = p
	}
	ctx := req.Context()
	trace := httptrace.ContextClientTrace(ctx)
	w := req // the request written: a copy with a fresh body on a retry
	for retried := false; ; retried = true {
		if isDone(ctx.Done()) {
			closeReqBody(w)
			return nil, cutOff(ctx)
		}
		uc, err := t.getConn(ctx, trace, https, host, port)
		if err != nil {
			closeReqBody(w)
			return nil, err
		}
		resp, early, err := uc.roundTrip(ctx, trace, w)
		if err == nil {
			resp.Request = req
			return resp, nil
		}
		// Nothing of a response came on a kept connection: the server has
		// probably closed it while it was idle.
		if !retried && early && uc.reused && canReplay(req, !uc.wrote) {
			if w.Body != nil && w.Body != http.NoBody {
				if req.GetBody == nil {
					return nil, err
				}
				body, gerr := req.GetBody()
				if gerr != nil {
					return nil, err
				}
				nr := *req
				nr.Body = body
				w = &nr
			}
			continue
		}
		return nil, err
	}
}

// CloseIdleConnections closes the connections not carrying a request.
func (t *UserTransport) CloseIdleConnections() {
	t.mu.Lock()
	conns := t.conns
	t.conns = nil
	for _, uc := range conns {
		uc.idle = false
		if uc.timer != nil {
			uc.timer.Stop()
		}
	}
	t.mu.Unlock()
	for _, uc := range conns {
		_ = uc.conn.Close() // nothing to do about an error
	}
}

// getConn returns the idle connection to the address, checked if it has
// been idle a while, or a new one.
func (t *UserTransport) getConn(ctx context.Context, trace *httptrace.ClientTrace, https bool, host, port string) (*userConn, error) {
	if trace != nil && trace.GetConn != nil {
		trace.GetConn(net.JoinHostPort(host, port))
	}
	if uc, idleFor := t.takeIdle(https, host, port); uc != nil {
		if idleFor < userStaleAfter || connAlive(uc.conn) {
			uc.reused = true
			if ph := phasesOf(ctx); ph != nil {
				ph.reused, ph.connDone = true, now()
			}
			if trace != nil && trace.GotConn != nil {
				trace.GotConn(httptrace.GotConnInfo{Conn: uc.conn, Reused: true, WasIdle: true, IdleTime: idleFor})
			}
			return uc, nil
		}
		// Closed by the server, or it sent something unasked: either way
		// the connection cannot carry this request.
		_ = uc.conn.Close()
	}
	return t.dial(ctx, trace, https, host, port)
}

// takeIdle removes the idle connection to the address from the list and
// returns it with the time it has been idle, or nil.
func (t *UserTransport) takeIdle(https bool, host, port string) (*userConn, time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, uc := range t.conns {
		if uc.https != https || !sameAddr(uc.addr, host, port) {
			continue
		}
		t.removeLocked(uc)
		uc.idle = false
		if uc.timer != nil {
			uc.timer.Stop() // the callback would leave a busy connection alone anyway
		}
		return uc, time.Since(uc.idleSince)
	}
	return nil, 0
}

// removeLocked removes uc from the idle list.
func (t *UserTransport) removeLocked(uc *userConn) {
	for i, c := range t.conns {
		if c == uc {
			last := len(t.conns) - 1
			t.conns[i] = t.conns[last]
			t.conns[last] = nil
			t.conns = t.conns[:last]
			if last == 0 {
				t.conns = nil // the user keeps no backing array while it holds no connection
			}
			return
		}
	}
}

// dial opens a connection to host:port (or where Hosts maps it), with the
// TLS handshake for https. The dialer calls the trace's ConnectStart and
// ConnectDone itself: httptrace.WithClientTrace gives them to package net
// through the context.
func (t *UserTransport) dial(ctx context.Context, trace *httptrace.ClientTrace, https bool, host, port string) (*userConn, error) {
	addr := net.JoinHostPort(host, port)
	d := newDialer()
	d.Timeout = t.dialTimeout
	bindDialer(d, t.from)
	ph := phasesOf(ctx)
	conn, err := d.DialContext(dialTrace(ctx, ph), "tcp", t.hosts.Map(addr))
	if err != nil {
		return nil, userErr(ctx, "dial", err)
	}
	if https {
		tc := tls.Client(conn, &tls.Config{
			ServerName:         host,       // the URL's, not the address dialled
			InsecureSkipVerify: t.insecure, //nolint:gosec // opt-in flag for self-signed test targets
			NextProtos:         []string{"http/1.1"},
		})
		hd := time.Now().Add(t.dialTimeout)
		if d, ok := ctx.Deadline(); ok && d.Before(hd) {
			hd = d
		}
		_ = conn.SetDeadline(hd) // an error shows in the handshake
		if trace != nil && trace.TLSHandshakeStart != nil {
			trace.TLSHandshakeStart()
		}
		err := tc.HandshakeContext(ctx)
		if trace != nil && trace.TLSHandshakeDone != nil {
			trace.TLSHandshakeDone(tc.ConnectionState(), err)
		}
		if err != nil {
			_ = conn.Close()
			return nil, userErr(ctx, "tls handshake", err)
		}
		conn = tc
	}
	if ph != nil {
		ph.connDone = now()
	}
	if trace != nil && trace.GotConn != nil {
		trace.GotConn(httptrace.GotConnInfo{Conn: conn})
	}
	return &userConn{t: t, conn: conn, https: https, addr: addr}, nil
}

// roundTrip writes req and reads the response's header. On error the
// connection is closed; early reports that it failed before any byte of a
// response arrived, and not because of the context or a timeout, which is
// how a connection closed by the server while idle fails.
func (uc *userConn) roundTrip(ctx context.Context, trace *httptrace.ClientTrace, req *http.Request) (resp *http.Response, early bool, err error) {
	if d, ok := ctx.Deadline(); ok {
		err = uc.conn.SetDeadline(d)
	} else {
		err = uc.conn.SetDeadline(time.Time{})
	}
	if err != nil {
		closeReqBody(req)
		uc.finish(false, nil)
		return nil, true, fmt.Errorf("session: set deadline: %w", err)
	}
	uc.watch(ctx)
	// Checked after the watch is set: a cancellation before this point is
	// seen here, one after it has the callback cut the deadline just set.
	if isDone(ctx.Done()) {
		closeReqBody(req)
		uc.finish(false, nil)
		return nil, false, cutOff(ctx)
	}

	uc.br = userReaders.Get().(*bufio.Reader)
	uc.br.Reset(uc)
	uc.bw = userWriters.Get().(*bufio.Writer)
	uc.bw.Reset(uc)
	uc.wrote, uc.werr = false, nil
	uc.readLimit = userMaxHeader
	// Without a trace to call, the request is written by writeRequest,
	// with req.Write's bytes, or by req.Write (which closes req.Body and
	// calls the trace's WroteHeaders and WroteRequest).
	handled := false
	if trace == nil {
		handled, err = writeRequest(uc.bw, req)
	}
	if !handled {
		err = req.Write(uc.bw)
	}
	ph := phasesOf(ctx)
	if ph != nil {
		ph.wrote = now() // where WroteRequest is called: before the flush
	}
	if err == nil {
		err = uc.bw.Flush()
	}
	uc.bw.Reset(nil)
	userWriters.Put(uc.bw)
	uc.bw = nil

	forceClose := false
	if err != nil {
		if uc.werr == nil || !uc.wrote || isDone(ctx.Done()) || isNetTimeout(uc.werr) {
			// The request (its body, say) failed, not the connection; or
			// nothing went out; or the time is up.
			uc.finish(false, nil)
			return nil, uc.werr != nil && !isDone(ctx.Done()) && !isNetTimeout(uc.werr), userErr(ctx, "write request", err)
		}
		// A server may answer and close before it has read the whole
		// request (a 413, say): its answer is the response.
		if _, perr := uc.br.Peek(1); perr != nil {
			uc.finish(false, nil)
			return nil, !isDone(ctx.Done()) && !isNetTimeout(perr), userErr(ctx, "write request", err)
		}
		forceClose = true
	} else if _, err := uc.br.Peek(1); err != nil {
		uc.finish(false, nil)
		return nil, !isDone(ctx.Done()) && !isNetTimeout(err), userErr(ctx, "read response", err)
	}
	if ph != nil {
		ph.firstByte = now()
	}
	if trace != nil && trace.GotFirstResponseByte != nil {
		trace.GotFirstResponseByte()
	}

	for n1xx := 0; ; n1xx++ {
		resp, err = http.ReadResponse(uc.br, req)
		if err != nil {
			uc.finish(false, nil)
			return nil, false, userErr(ctx, "read response", err)
		}
		code := resp.StatusCode
		if code < 100 || code > 199 {
			break
		}
		// An interim response (100 Continue, 103 Early Hints) has no body:
		// the final one follows.
		if code == http.StatusSwitchingProtocols {
			uc.finish(false, nil)
			return nil, false, errUserSwitching
		}
		if n1xx == userMax1xx {
			uc.finish(false, nil)
			return nil, false, errUserTooMany1xx
		}
		if trace != nil && trace.Got1xxResponse != nil {
			if err := trace.Got1xxResponse(code, textproto.MIMEHeader(resp.Header)); err != nil {
				uc.finish(false, nil)
				return nil, false, err
			}
		}
		if code == http.StatusContinue && trace != nil && trace.Got100Continue != nil {
			trace.Got100Continue()
		}
	}
	uc.readLimit = math.MaxInt64
	keep := !forceClose && !resp.Close && !wantsClose(req)
	if resp.Body == http.NoBody {
		// HEAD, 204, 304, Content-Length: 0: the response is all read.
		uc.finish(keep, trace)
		return resp, false, nil
	}
	resp.Body = &userBody{uc: uc, rc: resp.Body, ctx: ctx, trace: trace, keep: keep}
	return resp, false, nil
}

// Read reads from the connection for the read buffer, counting down the
// bytes a response header may take.
func (uc *userConn) Read(p []byte) (int, error) {
	if uc.readLimit <= 0 {
		return 0, errUserHeaderLarge
	}
	n, err := uc.conn.Read(p)
	uc.readLimit -= int64(n)
	return n, err
}

// Write writes to the connection for the write buffer, noting whether any
// byte of the request went out (a request nothing of which was written can
// be sent again whatever its method).
func (uc *userConn) Write(p []byte) (int, error) {
	n, err := uc.conn.Write(p)
	if n > 0 {
		uc.wrote = true
	}
	if err != nil {
		uc.werr = err
	}
	return n, err
}

// watch makes a cancellation of ctx interrupt the request's reads and
// writes, body included, by setting the connection's deadline in the past,
// until finish.
func (uc *userConn) watch(ctx context.Context) {
	if ctx.Done() == nil {
		return
	}
	seq := uc.seq // the previous request's finish happened before this one took the connection
	uc.stop = context.AfterFunc(ctx, func() { uc.interrupt(seq) })
}

// interrupt runs on its own goroutine when the context of request seq is
// done.
func (uc *userConn) interrupt(seq uint64) {
	uc.t.mu.Lock()
	defer uc.t.mu.Unlock()
	if uc.seq == seq {
		_ = uc.conn.SetDeadline(aLongTimeAgo) // an error means the connection is closed: nothing to interrupt
	}
}

// finish ends the request in flight: its buffers go back to the pools, and
// the connection goes back to the idle list when keep, or is closed.
func (uc *userConn) finish(keep bool, trace *httptrace.ClientTrace) {
	if uc.stop != nil {
		uc.stop()
		uc.stop = nil
	}
	if uc.br != nil {
		// Bytes beyond the response were never asked for: the connection
		// is out of step with the requests.
		if uc.br.Buffered() > 0 {
			keep = false
		}
		uc.br.Reset(nil) // drop the connection so the pool does not keep it reachable
		userReaders.Put(uc.br)
		uc.br = nil
	}
	t := uc.t
	t.mu.Lock()
	uc.seq++
	if keep {
		for _, o := range t.conns {
			if o.https == uc.https && o.addr == uc.addr {
				keep = false // another request's connection was kept first
				break
			}
		}
	}
	if keep {
		uc.idle = true
		uc.idleSince = time.Now()
		t.conns = append(t.conns, uc)
		if t.idle > 0 {
			if uc.timer == nil {
				uc.timer = time.AfterFunc(t.idle, uc.expire)
			} else {
				uc.timer.Reset(t.idle)
			}
		}
	}
	t.mu.Unlock()
	if !keep {
		_ = uc.conn.Close()
		return
	}
	if trace != nil && trace.PutIdleConn != nil {
		trace.PutIdleConn(nil)
	}
}

// expire is the idle timer's callback: it closes the connection if it is
// still idle and has been for the whole timeout (a request may have taken
// and given it back since the timer fired).
func (uc *userConn) expire() {
	t := uc.t
	t.mu.Lock()
	if !uc.idle || time.Since(uc.idleSince) < t.idle {
		t.mu.Unlock()
		return
	}
	t.removeLocked(uc)
	uc.idle = false
	t.mu.Unlock()
	_ = uc.conn.Close()
}

// userBody is a response body read from a UserTransport connection. At its
// end the connection goes back to idle; closed before its end, the
// connection is closed (the rest of the body is not read).
type userBody struct {
	uc    *userConn
	rc    io.ReadCloser // net/http's body reader, over uc.br
	ctx   context.Context
	trace *httptrace.ClientTrace
	keep  bool // the connection can carry another request after this body

	mu      sync.Mutex
	reading bool  // a Read is in rc
	closed  bool  // Close was called
	err     error // once set, the connection is released and Read returns err
}

// Read reads the body. The end of the body releases the connection.
func (b *userBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	switch {
	case b.closed:
		b.mu.Unlock()
		return 0, errUserBodyClosed
	case b.err != nil:
		err := b.err
		b.mu.Unlock()
		return 0, err
	case b.reading:
		b.mu.Unlock()
		return 0, errors.New("session: concurrent reads of a response body")
	}
	b.reading = true
	b.mu.Unlock()

	n, err := b.rc.Read(p)

	b.mu.Lock()
	defer b.mu.Unlock()
	b.reading = false
	switch {
	case errors.Is(err, io.EOF):
		err = io.EOF
		b.err = err
		b.uc.finish(b.keep && !b.closed, b.trace)
	case err != nil:
		err = userErr(b.ctx, "read body", err)
		b.err = err
		b.uc.finish(false, nil)
	case b.closed:
		// Closed while this Read was blocked: the connection is closed.
		b.err = errUserBodyClosed
		b.uc.finish(false, nil)
	}
	return n, err
}

// Close closes the body; before its end, it closes the connection.
func (b *userBody) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	switch {
	case b.err != nil:
		// The connection has been released already.
	case b.reading:
		// Unblocks the Read, which releases the rest.
		_ = b.uc.conn.Close()
	default:
		b.err = errUserBodyClosed
		b.uc.finish(false, nil)
	}
	return nil
}

// userErr is the error of a request that failed while doing what: the
// context's when it is done or its deadline has passed (the connection's
// deadline can expire just before the context notices), wrapped otherwise.
func userErr(ctx context.Context, what string, err error) error {
	if isDone(ctx.Done()) {
		return cutOff(ctx)
	}
	if d, ok := ctx.Deadline(); ok && isNetTimeout(err) && !time.Now().Before(d) {
		return fmt.Errorf("session: request cut off: %w", context.DeadlineExceeded)
	}
	return fmt.Errorf("session: %s: %w", what, err)
}

// isNetTimeout reports whether err is a network timeout.
func isNetTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// closeReqBody closes the body of a request that will not be written.
func closeReqBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close() // the request fails anyway
	}
}

// canReplay applies net/http's rule for sending a request again on a new
// connection: when nothing of it was written and its body, if any, can be
// had again; or when it is idempotent (an idempotent method, or an
// Idempotency-Key header) and has no body or one that can be had again.
func canReplay(req *http.Request, nothingWritten bool) bool {
	noBody := req.Body == nil || req.Body == http.NoBody
	if nothingWritten && (noBody || req.GetBody != nil) {
		return true
	}
	if !noBody && req.GetBody == nil {
		return false
	}
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	_, ok := req.Header["Idempotency-Key"]
	_, xok := req.Header["X-Idempotency-Key"]
	return ok || xok
}

// wantsClose reports whether the request asks for the connection to be
// closed after its response.
func wantsClose(req *http.Request) bool {
	if req.Close {
		return true
	}
	for _, v := range req.Header["Connection"] {
		for v != "" {
			var tok string
			tok, v, _ = strings.Cut(v, ",")
			if strings.EqualFold(strings.TrimSpace(tok), "close") {
				return true
			}
		}
	}
	return false
}

// sameAddr reports whether addr is net.JoinHostPort(host, port), host
// compared without regard to case; it allocates nothing.
func sameAddr(addr, host, port string) bool {
	h := addr
	if strings.IndexByte(host, ':') >= 0 {
		if len(addr) < 2 || addr[0] != '[' {
			return false
		}
		h = addr[1:]
		if len(h) < len(host)+1 || h[len(host)] != ']' {
			return false
		}
		if !strings.EqualFold(h[:len(host)], host) {
			return false
		}
		return len(h) == len(host)+2+len(port) && h[len(host)+1] == ':' && h[len(host)+2:] == port
	}
	return len(h) == len(host)+1+len(port) && h[len(host)] == ':' &&
		strings.EqualFold(h[:len(host)], host) && h[len(host)+1:] == port
}
