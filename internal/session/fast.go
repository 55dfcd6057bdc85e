package session

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Limits of the fast client's response parser.
const (
	// fastBufSize is the read buffer of a connection. It is also the longest
	// status line, chunk-size line or interpreted header line accepted:
	// bufio.Reader.ReadSlice cannot return a longer line.
	fastBufSize = 4 << 10
	// fastMaxHeader caps the bytes of a response's header section, interim
	// 1xx responses included, and separately those of a chunked trailer.
	fastMaxHeader = 64 << 10
	// fastMaxDial caps the dial timeout, as NewTransport does.
	fastMaxDial = 10 * time.Second
)

// fastBufs holds the read buffers of connections between requests, so that
// a virtual user in think time does not keep 4 KB it is not using.
var fastBufs = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, fastBufSize) }}

// fastScratchSize is the read size for bodies larger than the read buffer.
const fastScratchSize = 32 << 10

// fastScratch holds the scratch buffers of discard, used only while a large
// body is read.
var fastScratch = sync.Pool{New: func() any { return new([fastScratchSize]byte) }}

// aLongTimeAgo is a deadline in the past: setting it makes blocked reads and
// writes on the connection return at once with a timeout error.
var aLongTimeAgo = time.Unix(1, 0)

// FastClient sends GET requests for one URL over one kept-alive HTTP/1.1
// connection. It is not safe for concurrent use: each virtual user owns one.
//
// It is the quick form's hot path (`stampede run --url`): no goroutine of its
// own, no write buffer, a 4 KB read buffer borrowed from a pool for the
// duration of a request only, and no allocation per request once the
// connection is up.
type FastClient struct {
	addr    string // host:port dialled
	req     []byte // the whole request, built once
	timeout time.Duration
	dialer  net.Dialer
	// dial replaces dialer.DialContext in tests.
	dial func(ctx context.Context, network, addr string) (net.Conn, error)

	// ownBuf keeps the read buffer with the client between requests instead
	// of returning it to fastBufs (for measuring what the pool saves).
	ownBuf bool
	br     *bufio.Reader // nil between requests unless ownBuf

	// mu guards conn and watchDone against the context callback (interrupt),
	// which runs on another goroutine. Get's goroutine is the only writer of
	// both and reads them without the lock.
	mu        sync.Mutex
	conn      net.Conn // nil when no connection is kept
	watchDone <-chan struct{}
	stopWatch func() bool
}

// NewFastClient returns a client for u, which must be an http:// URL. Each
// request, dial included, is bounded by timeout (0 or less means 60 s).
// The connection is dialled by the first Get.
func NewFastClient(u *url.URL, timeout time.Duration) (*FastClient, error) {
	if u == nil {
		return nil, errors.New("session: no URL")
	}
	if !strings.EqualFold(u.Scheme, "http") {
		return nil, fmt.Errorf("session: fast client speaks plain http only, not %q", u.Scheme)
	}
	if u.Host == "" {
		return nil, errors.New("session: URL has no host")
	}
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	host := strings.TrimSuffix(u.Host, ":") // "example.com:" means the default port
	port := u.Port()
	if port == "" {
		port = "80"
	}
	uri := u.RequestURI()
	if !strings.HasPrefix(uri, "/") {
		uri = "/" + uri // a Path without its slash, as url.URL.JoinPath can leave
	}
	// The request is written as it is: a space, CR or LF in either part
	// would split the request line or inject a header.
	if !printableASCII(host) || !printableASCII(uri) {
		return nil, errors.New("session: URL host and path must be printable ASCII without spaces (use the punycode form of a host)")
	}
	var b strings.Builder
	b.WriteString("GET ")
	b.WriteString(uri)
	b.WriteString(" HTTP/1.1\r\nHost: ")
	b.WriteString(host)
	// No Accept: a request without one accepts any type (RFC 9110, 12.5.1),
	// as "*/*" says at the cost of the server parsing and storing a header
	// on every request (as wrk, and Go's client, send none). The User-Agent
	// stays: it names the load in the server's logs.
	b.WriteString("\r\nUser-Agent: " + UserAgent + "\r\n")
	if u.User != nil {
		// As net/http does for credentials in the URL.
		pw, _ := u.User.Password()
		b.WriteString("Authorization: Basic ")
		b.WriteString(base64.StdEncoding.EncodeToString([]byte(u.User.Username() + ":" + pw)))
		b.WriteString("\r\n")
	}
	b.WriteString("\r\n")
	return &FastClient{
		addr:    net.JoinHostPort(u.Hostname(), port),
		req:     []byte(b.String()),
		timeout: timeout,
		dialer:  net.Dialer{Timeout: min(timeout, fastMaxDial), KeepAlive: 30 * time.Second},
	}, nil
}

// printableASCII reports whether s has only bytes from '!' to '~'.
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// Close closes the kept connection, if any, and stops watching the last
// context given to Get, which otherwise keeps the client reachable until it
// is done. The client can still be used afterwards: the next Get dials.
func (c *FastClient) Close() error {
	c.mu.Lock()
	stop := c.stopWatch
	c.watchDone, c.stopWatch = nil, nil
	c.mu.Unlock()
	if stop != nil {
		stop()
	}
	if c.br != nil {
		c.br.Reset(nil)
		if !c.ownBuf {
			fastBufs.Put(c.br)
			c.br = nil
		}
	}
	return c.closeConn()
}

// closeConn closes and forgets the connection.
func (c *FastClient) closeConn() error {
	if c.conn == nil {
		return nil
	}
	c.mu.Lock()
	conn := c.conn
	c.conn = nil
	c.mu.Unlock()
	return conn.Close()
}

// watch makes a cancellation of ctx interrupt the request in flight by
// setting the connection's deadline in the past.
//
// context.AfterFunc allocates, so instead of registering and stopping it
// around every request, the registration is kept while the same context
// (identified by its Done channel) is passed again, as the engine does with
// the run's context: it is replaced when another one comes and stopped by
// Close. Between requests the callback can only cut an idle connection's
// deadline, which the next request sets afresh.
func (c *FastClient) watch(ctx context.Context) {
	done := ctx.Done()
	if done == c.watchDone {
		return
	}
	c.mu.Lock()
	stop := c.stopWatch
	// From here the old registration's callback, even one already running,
	// finds watchDone changed and leaves the connection alone.
	c.watchDone, c.stopWatch = done, nil
	if done != nil {
		c.stopWatch = context.AfterFunc(ctx, func() { c.interrupt(done) })
	}
	c.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// interrupt runs on its own goroutine when the watched context is done.
func (c *FastClient) interrupt(done <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.watchDone == done && c.conn != nil {
		_ = c.conn.SetDeadline(aLongTimeAgo) // an error means the connection is closed: nothing to interrupt
	}
}

// isDone reports whether done is closed, without taking the context's lock.
func isDone(done <-chan struct{}) bool {
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// cutOff is the error of a request the context ended.
func cutOff(ctx context.Context) error {
	return fmt.Errorf("session: request cut off: %w", ctx.Err())
}

// DialTo makes the client connect to addr (host:port) instead of the URL's
// host, which it still names in the Host header (see Hosts).
func (c *FastClient) DialTo(addr string) { c.addr = addr }

// Addr returns the host:port the client dials.
func (c *FastClient) Addr() string { return c.addr }

// Request returns the request the client sends, whole (shared: not to be
// modified).
func (c *FastClient) Request() []byte { return c.req }

// Get sends one GET and reads the whole response, discarding the body; size
// is the body's length after chunked decoding. Status 0 and err != nil mean
// no response (transport error, malformed response or timeout); IsTimeout
// and Describe apply to err. When ctx ends during the call, Get returns
// promptly with an error for which errors.Is(err, ctx.Err()) holds.
//
// A kept-alive connection that turns out to have been closed by the server
// (the write fails, or the connection ends before the first response byte)
// is redialled once and the request sent again, as net/http does for GETs.
func (c *FastClient) Get(ctx context.Context) (status int, size int64, tm Timing, err error) {
	done := ctx.Done()
	if isDone(done) {
		return 0, 0, tm, cutOff(ctx)
	}
	c.watch(ctx)
	deadline := time.Now().Add(c.timeout)
	for retried := false; ; retried = true {
		reused := c.conn != nil
		if !reused {
			start := time.Now()
			if err := c.connect(ctx, deadline); err != nil {
				if isDone(done) {
					return 0, 0, tm, cutOff(ctx)
				}
				return 0, 0, tm, err
			}
			tm.Connect = time.Since(start)
		}
		tm.Reused = reused
		if err := c.conn.SetDeadline(deadline); err != nil {
			c.closeConn()
			return 0, 0, tm, fmt.Errorf("session: set deadline: %w", err)
		}
		// Checked after SetDeadline: a cancellation before this point is
		// seen here, one after it has its callback override the deadline
		// just set, so a blocked read below cannot outlive ctx.
		if isDone(done) {
			c.closeConn()
			return 0, 0, tm, cutOff(ctx)
		}
		br := c.reader()
		_, err = c.conn.Write(c.req)
		var wrote time.Time
		if err == nil {
			wrote = time.Now()
			_, err = br.Peek(1)
		}
		if err != nil {
			c.release()
			c.closeConn()
			if isDone(done) {
				return 0, 0, tm, cutOff(ctx)
			}
			// Nothing of a response has arrived: if the kept connection had
			// been closed by the server while idle, try a fresh one, once.
			if reused && !retried && staleConn(err) {
				tm.Connect = 0
				continue
			}
			if wrote.IsZero() {
				return 0, 0, tm, fmt.Errorf("session: write request: %w", err)
			}
			return 0, 0, tm, fmt.Errorf("session: read response: %w", err)
		}
		tm.TTFB = time.Since(wrote)
		var keep bool
		status, size, keep, err = readResponse(br)
		if err != nil {
			c.release()
			c.closeConn()
			if isDone(done) {
				return 0, 0, tm, cutOff(ctx)
			}
			return 0, 0, tm, err
		}
		// Bytes after the response were never asked for: the connection is
		// out of step with the requests and cannot be reused.
		if !keep || br.Buffered() > 0 {
			c.closeConn()
		}
		c.release()
		return status, size, tm, nil
	}
}

// connect dials a new connection.
func (c *FastClient) connect(ctx context.Context, deadline time.Time) error {
	var conn net.Conn
	var err error
	if c.dial != nil {
		conn, err = c.dial(ctx, "tcp", c.addr)
	} else {
		d := c.dialer // a copy: Deadline is this request's
		d.Deadline = deadline
		conn, err = d.DialContext(ctx, "tcp", c.addr)
	}
	if err != nil {
		return fmt.Errorf("session: dial: %w", err)
	}
	c.mu.Lock()
	c.conn = conn
	c.mu.Unlock()
	return nil
}

// reader returns the read buffer, reset onto the current connection.
func (c *FastClient) reader() *bufio.Reader {
	if c.br == nil {
		c.br = fastBufs.Get().(*bufio.Reader)
	}
	c.br.Reset(c.conn)
	return c.br
}

// release gives the read buffer back to the pool between requests. Nothing
// is lost: a connection kept after a response has nothing buffered.
func (c *FastClient) release() {
	if c.ownBuf || c.br == nil {
		return
	}
	c.br.Reset(nil) // drop the connection so the pool does not keep it reachable
	fastBufs.Put(c.br)
	c.br = nil
}

// staleConn reports whether err is how a connection closed by the peer
// fails: end of stream, reset, or broken pipe.
func staleConn(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, io.ErrClosedPipe)
}

// Parse errors. They are values so that the hot path formats nothing.
var (
	errStatusLine    = errors.New("session: malformed status line")
	errHeaderLine    = errors.New("session: malformed header line")
	errLineTooLong   = errors.New("session: response line too long")
	errHeaderTooBig  = errors.New("session: response header too large")
	errContentLength = errors.New("session: bad Content-Length")
	errTwoLengths    = errors.New("session: conflicting Content-Length headers")
	errTransferEnc   = errors.New("session: unsupported Transfer-Encoding")
	errSwitching     = errors.New("session: unexpected 101 Switching Protocols")
	errChunkSize     = errors.New("session: bad chunk size")
	errChunkEnd      = errors.New("session: malformed chunked encoding")
	errTrailerTooBig = errors.New("session: chunked trailer too large")
	errShortResponse = fmt.Errorf("session: read response: %w", io.ErrUnexpectedEOF)
)

// respHeader is what the client interprets of a response's header section.
type respHeader struct {
	status    int
	minor     byte  // HTTP/1.x minor version digit
	length    int64 // Content-Length, -1 when absent
	chunked   bool
	close     bool // Connection: close
	keepAlive bool // Connection: keep-alive
	// lastTracked says the previous header line was one interpreted here,
	// so an obs-fold continuation of it cannot be ignored.
	lastTracked bool
}

// readResponse reads one response from br after its first byte has arrived,
// discarding the body. keep reports whether the connection can carry the
// next request.
func readResponse(br *bufio.Reader) (status int, size int64, keep bool, err error) {
	budget := fastMaxHeader
	var h respHeader
	for {
		if err := readHeader(br, &h, &budget); err != nil {
			return 0, 0, false, err
		}
		if h.status >= 200 {
			break
		}
		if h.status == 101 {
			return 0, 0, false, errSwitching
		}
		// Interim response (100 Continue, 103 Early Hints): no body, the
		// final response follows. The shared budget bounds how many.
	}
	keep = !h.close && (h.minor != '0' || h.keepAlive)
	switch {
	case h.status == 204 || h.status == 304:
		// No body whatever the header says.
	case h.chunked:
		size, err = readChunked(br)
		if h.length >= 0 || h.minor == '0' {
			// Both framings at once, or chunked in HTTP/1.0: the message is
			// suspect (RFC 9112 §6.1, §6.3); do not trust what follows it.
			keep = false
		}
	case h.length >= 0:
		size, err = discard(br, h.length)
	default:
		// Delimited by the end of the connection.
		keep = false
		size, err = discard(br, -1)
	}
	if err != nil {
		return 0, 0, false, err
	}
	return h.status, size, keep, nil
}

// readHeader reads a status line and header section into h, taking their
// size from *budget.
func readHeader(br *bufio.Reader, h *respHeader, budget *int) error {
	*h = respHeader{length: -1}
	line, err := readLine(br, budget)
	if errors.Is(err, bufio.ErrBufferFull) {
		return errLineTooLong
	}
	if err != nil {
		return err
	}
	// "HTTP/1.1 200 OK": version, space, three digits, then the end or a
	// space and a reason phrase (which may be empty).
	if len(line) < 12 || string(line[:7]) != "HTTP/1." || !isDigit(line[7]) || line[8] != ' ' ||
		line[9] < '1' || line[9] > '9' || !isDigit(line[10]) || !isDigit(line[11]) ||
		(len(line) > 12 && line[12] != ' ') {
		return errStatusLine
	}
	h.minor = line[7]
	h.status = int(line[9]-'0')*100 + int(line[10]-'0')*10 + int(line[11]-'0')
	first := true
	for {
		line, err := readLine(br, budget)
		if errors.Is(err, bufio.ErrBufferFull) {
			// A header longer than the buffer: fine if it is not one the
			// client interprets (a long Content-Security-Policy, say).
			if err := skipLongHeader(br, line, budget); err != nil {
				return err
			}
			first, h.lastTracked = false, false
			continue
		}
		if err != nil {
			return err
		}
		if len(line) == 0 {
			return nil
		}
		if line[0] == ' ' || line[0] == '\t' {
			// obs-fold: continues the previous line's value. Harmless for a
			// header ignored here; for an interpreted one, refuse to guess.
			if first || h.lastTracked {
				return errHeaderLine
			}
			continue
		}
		first = false
		if err := h.field(line); err != nil {
			return err
		}
	}
}

// field interprets one header line.
func (h *respHeader) field(line []byte) error {
	i := bytes.IndexByte(line, ':')
	if i <= 0 {
		return errHeaderLine
	}
	name, value := line[:i], trimOWS(line[i+1:])
	for _, b := range name {
		// A field name is a token: no whitespace before the colon (RFC 9112 §5.1).
		if b <= ' ' || b >= 0x7f {
			return errHeaderLine
		}
	}
	h.lastTracked = true
	switch {
	case equalFold(name, "content-length"):
		n, ok := parseLength(value)
		if !ok {
			return errContentLength
		}
		if h.length >= 0 && h.length != n {
			return errTwoLengths
		}
		h.length = n
	case equalFold(name, "transfer-encoding"):
		if h.chunked || !equalFold(value, "chunked") {
			// Codings other than chunked alone are not implemented; a
			// repeated header would be a second coding.
			return errTransferEnc
		}
		h.chunked = true
	case equalFold(name, "connection"):
		for len(value) > 0 {
			var tok []byte
			if j := bytes.IndexByte(value, ','); j >= 0 {
				tok, value = trimOWS(value[:j]), value[j+1:]
			} else {
				tok, value = trimOWS(value), nil
			}
			switch {
			case equalFold(tok, "close"):
				h.close = true
			case equalFold(tok, "keep-alive"):
				h.keepAlive = true
			}
		}
	default:
		h.lastTracked = false
	}
	return nil
}

// skipLongHeader reads past the rest of a header line that did not fit the
// buffer; start is its first part.
func skipLongHeader(br *bufio.Reader, start []byte, budget *int) error {
	i := bytes.IndexByte(start, ':')
	if i <= 0 {
		return errLineTooLong
	}
	name := start[:i]
	if equalFold(name, "content-length") || equalFold(name, "transfer-encoding") || equalFold(name, "connection") {
		return errLineTooLong
	}
	for {
		_, err := readLine(br, budget)
		if !errors.Is(err, bufio.ErrBufferFull) {
			return err
		}
	}
}

// readLine returns the next line without its CRLF (or bare LF), valid until
// the next read, and takes its length from *budget. A line longer than the
// buffer comes back in parts, each with bufio.ErrBufferFull but the last.
func readLine(br *bufio.Reader, budget *int) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	*budget -= len(line)
	if *budget < 0 {
		return nil, errHeaderTooBig
	}
	switch {
	case err == nil:
	case errors.Is(err, bufio.ErrBufferFull):
		return line, err
	case errors.Is(err, io.EOF):
		return nil, errShortResponse
	default:
		return nil, fmt.Errorf("session: read response: %w", err)
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// readChunked reads a chunked body and its trailer, returning the decoded
// size.
func readChunked(br *bufio.Reader) (int64, error) {
	var size int64
	for {
		budget := fastBufSize // one chunk-size line
		line, err := readLine(br, &budget)
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			return size, errLineTooLong
		case err != nil:
			return size, err
		}
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i] // chunk extensions are ignored
		}
		n, ok := parseHex(trimOWS(line))
		if !ok {
			return size, errChunkSize
		}
		if n == 0 {
			break
		}
		if _, err := discard(br, n); err != nil {
			return size, err
		}
		size += n
		// The chunk's data ends with CRLF exactly.
		crlf, err := br.Peek(2)
		if errors.Is(err, io.EOF) {
			return size, errShortResponse
		}
		if err != nil {
			return size, fmt.Errorf("session: read response: %w", err)
		}
		if crlf[0] != '\r' || crlf[1] != '\n' {
			return size, errChunkEnd
		}
		_, _ = br.Discard(2) // cannot fail: the two bytes are buffered
	}
	budget := fastMaxHeader
	for {
		line, err := readLine(br, &budget)
		switch {
		case errors.Is(err, errHeaderTooBig):
			return size, errTrailerTooBig
		case errors.Is(err, bufio.ErrBufferFull):
			// Trailer fields are not interpreted: only their length counts,
			// against the budget. The rest of a long line is read to its
			// end here, so that a remainder of just CRLF is not taken for
			// the empty line that ends the trailer.
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = readLine(br, &budget)
			}
			if errors.Is(err, errHeaderTooBig) {
				return size, errTrailerTooBig
			}
			if err != nil {
				return size, err
			}
		case err != nil:
			return size, err
		case len(line) == 0:
			return size, nil
		}
	}
}

// discard reads and drops n bytes, or everything up to the end of the
// stream when n < 0, and returns how many it dropped. A stream ending short
// of n is io.ErrUnexpectedEOF.
//
// What does not fit the read buffer is read in 32 KB steps into a scratch
// buffer borrowed for the call (bufio.Reader.Read reads straight into a
// slice at least as long as its buffer when nothing is buffered), so that a
// large body costs an eighth of the read calls.
func discard(br *bufio.Reader, n int64) (int64, error) {
	var done int64
	var scratch *[fastScratchSize]byte
	defer func() {
		if scratch != nil {
			fastScratch.Put(scratch)
		}
	}()
	for n != 0 {
		var d int
		var err error
		if n > 0 && n <= fastBufSize {
			d, err = br.Discard(int(n))
		} else {
			if scratch == nil {
				scratch = fastScratch.Get().(*[fastScratchSize]byte)
			}
			p := scratch[:]
			if n > 0 && n < int64(len(p)) {
				p = p[:n]
			}
			d, err = br.Read(p)
		}
		done += int64(d)
		if n > 0 {
			n -= int64(d)
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				if n < 0 {
					return done, nil
				}
				err = io.ErrUnexpectedEOF
			}
			return done, fmt.Errorf("session: read body: %w", err)
		}
	}
	return done, nil
}

// parseLength parses a Content-Length value: decimal digits only, below
// 2^62 so that sums of sizes cannot overflow.
func parseLength(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// parseHex parses a chunk size: hex digits, at most 15 of them (below 2^60).
func parseHex(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 15 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		var d byte
		switch {
		case isDigit(c):
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		n = n<<4 | int64(d)
	}
	return n, true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// trimOWS trims spaces and tabs from both ends.
func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// equalFold reports whether b equals the lower-case ASCII string lower,
// ignoring ASCII case.
func equalFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}
