package evloop

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

// Limits of the response parser, those of session.FastClient (fast.go).
const (
	// lineMax is the longest status line, chunk-size line or interpreted
	// header line accepted, LF included: fast.go's read buffer, past which
	// bufio.Reader.ReadSlice returns a line in parts.
	lineMax = 4 << 10
	// headerMax caps the bytes of a response's header section, interim 1xx
	// responses included, and separately those of a chunked trailer.
	headerMax = 64 << 10
)

// Parse errors: the texts of fast.go's, under this package's prefix (what
// session.Describe keeps of them, the part after the last ": ", is the
// same). They are values so that the hot path formats nothing.
var (
	errStatusLine    = errors.New("evloop: malformed status line")
	errHeaderLine    = errors.New("evloop: malformed header line")
	errLineTooLong   = errors.New("evloop: response line too long")
	errHeaderTooBig  = errors.New("evloop: response header too large")
	errContentLength = errors.New("evloop: bad Content-Length")
	errTwoLengths    = errors.New("evloop: conflicting Content-Length headers")
	errTransferEnc   = errors.New("evloop: unsupported Transfer-Encoding")
	errSwitching     = errors.New("evloop: unexpected 101 Switching Protocols")
	errChunkSize     = errors.New("evloop: bad chunk size")
	errChunkEnd      = errors.New("evloop: malformed chunked encoding")
	errTrailerTooBig = errors.New("evloop: chunked trailer too large")
	errShortResponse = fmt.Errorf("evloop: read response: %w", io.ErrUnexpectedEOF)
	errShortBody     = fmt.Errorf("evloop: read body: %w", io.ErrUnexpectedEOF)
	// Timeouts in a response wrap os.ErrDeadlineExceeded (see
	// evloop_linux.go).
	errResponseTimeout = fmt.Errorf("evloop: read response: %w", os.ErrDeadlineExceeded)
	errBodyTimeout     = fmt.Errorf("evloop: read body: %w", os.ErrDeadlineExceeded)
)

// pstate is where a parser is in a response.
type pstate uint8

const (
	psStatus     pstate = iota // status line
	psHeader                   // header lines
	psSkipHeader               // rest of a header line longer than lineMax
	psBody                     // Content-Length body
	psChunkSize                // chunk-size line
	psChunkData                // chunk data
	psChunkEnd                 // the CRLF after a chunk's data
	psTrailer                  // trailer lines
	psUntilEOF                 // body delimited by the end of the connection
	psDone                     // response complete
)

// parser reads one response incrementally, discarding the body: it is fed
// the bytes as they arrive, in any split, and keeps only a few integers
// between reads. A line split across reads is copied into a carry buffer
// borrowed from the loop's pool until its end arrives; lines are otherwise
// read in place.
//
// Its results are those of fast.go's readResponse over the same bytes:
// lines are cut into parts of lineMax bytes as bufio.Reader.ReadSlice cuts
// them, and the header budget is taken per part, so that the same error
// comes first.
type parser struct {
	st     pstate
	minor  byte  // HTTP/1.x minor version digit
	status int16 // of the response being read
	budget int32 // header (or trailer) bytes left
	part   int32 // bytes of the current part of a skipped line
	length int64 // Content-Length, -1 when absent
	remain int64 // bytes left of a body or chunk
	size   int64 // body bytes so far, after chunked decoding

	chunked   bool
	close     bool // Connection: close
	keepAlive bool // Connection: keep-alive
	noKeep    bool // the framing makes the connection unusable afterwards
	first     bool // no header line read yet in this section
	// lastTracked says the previous header line was one interpreted here,
	// so an obs-fold continuation of it cannot be ignored.
	lastTracked bool
	haveCR      bool // the first byte of a chunk's CRLF has arrived, in cr
	cr          byte
	// inLong says the trailer line being read began in an earlier part
	// (a line longer than lineMax): its last part, a bare CRLF maybe, ends
	// that line, not the trailer.
	inLong bool

	carry    *[lineMax]byte // nil unless a line is split across reads
	carryLen int32

	// d, when not nil, is told the final response's header fields and
	// body bytes, as user who's (feedTo sets both for the time of a feed).
	d   Driver
	who int
}

// carryPool holds carry buffers between the lines that need one. It is
// the loop's, used by its goroutine only.
type carryPool struct{ free []*[lineMax]byte }

// maxFreeCarries bounds the buffers kept idle in a pool.
const maxFreeCarries = 64

func (c *carryPool) get() *[lineMax]byte {
	if n := len(c.free); n > 0 {
		b := c.free[n-1]
		c.free = c.free[:n-1]
		return b
	}
	return new([lineMax]byte)
}

func (c *carryPool) put(b *[lineMax]byte) {
	if len(c.free) < maxFreeCarries {
		c.free = append(c.free, b)
	}
}

// reset readies p for a new response, giving back its carry buffer.
func (p *parser) reset(pool *carryPool) {
	if p.carry != nil {
		pool.put(p.carry)
	}
	*p = parser{budget: headerMax, length: -1, first: true}
}

// done reports whether the response is complete.
func (p *parser) done() bool { return p.st == psDone }

// keep reports whether the connection can carry the next request after a
// complete response.
func (p *parser) keep() bool {
	return !p.noKeep && !p.close && (p.minor != '0' || p.keepAlive)
}

// feed parses b, the next bytes of the connection. It returns how many it
// used: fewer than len(b) only when the response is complete (the rest
// belongs to no request) or on an error.
func (p *parser) feed(b []byte, pool *carryPool) (n int, err error) {
	return p.feedTo(b, pool, nil, 0)
}

// feedTo is feed telling d, when not nil, the final response's header
// fields and body bytes as user who's.
func (p *parser) feedTo(b []byte, pool *carryPool, d Driver, who int) (n int, err error) {
	p.d, p.who = d, who
	for n < len(b) && p.st != psDone && err == nil {
		switch p.st {
		case psBody, psChunkData:
			k := min(p.remain, int64(len(b)-n))
			if d != nil && k > 0 {
				d.Body(who, b[n:n+int(k)])
			}
			n += int(k)
			p.remain -= k
			p.size += k
			if p.remain == 0 {
				if p.st == psBody {
					p.st = psDone
				} else {
					p.st = psChunkEnd
				}
			}
		case psUntilEOF:
			if d != nil {
				d.Body(who, b[n:])
			}
			p.size += int64(len(b) - n)
			n = len(b)
		case psChunkEnd:
			// The chunk's data ends with CRLF exactly; as fast.go peeks at
			// both bytes before judging, a wrong first byte followed by
			// the end of the stream is a short response.
			c := b[n]
			n++
			if !p.haveCR {
				p.cr, p.haveCR = c, true
				continue
			}
			p.haveCR = false
			if p.cr != '\r' || c != '\n' {
				err = errChunkEnd
				break
			}
			p.st = psChunkSize
		case psSkipHeader:
			n += p.skip(b[n:])
			if p.part == 0 && p.budget < 0 {
				err = errHeaderTooBig
			}
		default:
			part, k, ok := p.nextPart(b[n:], pool)
			n += k
			if ok {
				err = p.line(part)
			}
		}
	}
	if p.carry != nil && p.carryLen == 0 {
		pool.put(p.carry)
		p.carry = nil
	}
	p.d = nil
	return n, err
}

// nextPart returns the next part of a line from b: the bytes up to and
// including an LF, or lineMax bytes without one, from the carry's start if
// a part began in an earlier read. ok is false when b ended before the part
// did: its bytes are then kept in the carry. n is the bytes of b used.
func (p *parser) nextPart(b []byte, pool *carryPool) (part []byte, n int, ok bool) {
	seg := b
	if room := lineMax - int(p.carryLen); len(seg) > room {
		seg = seg[:room]
	}
	if i := bytes.IndexByte(seg, '\n'); i >= 0 {
		seg = seg[:i+1]
	} else if int(p.carryLen)+len(seg) < lineMax {
		p.keepPart(seg, pool)
		return nil, len(seg), false
	}
	if p.carryLen == 0 {
		return seg, len(seg), true
	}
	p.keepPart(seg, pool)
	part = p.carry[:p.carryLen]
	p.carryLen = 0 // the buffer stays p's, its bytes valid, until feed returns
	return part, len(seg), true
}

// keepPart appends seg to the carry.
func (p *parser) keepPart(seg []byte, pool *carryPool) {
	if p.carry == nil {
		p.carry = pool.get()
	}
	p.carryLen += int32(copy(p.carry[p.carryLen:], seg))
}

// skip reads past the rest of a header line longer than lineMax, taking
// each part from the budget when it ends, and returns the bytes used.
func (p *parser) skip(b []byte) int {
	seg := b
	if room := lineMax - int(p.part); len(seg) > room {
		seg = seg[:room]
	}
	i := bytes.IndexByte(seg, '\n')
	if i >= 0 {
		seg = seg[:i+1]
	}
	p.part += int32(len(seg))
	if i >= 0 || p.part == lineMax {
		p.budget -= p.part
		p.part = 0
		if i >= 0 {
			p.st = psHeader
		}
	}
	return len(seg)
}

// line interprets one part of a line, raw: it ends with LF unless it is
// the first lineMax bytes of a longer line.
func (p *parser) line(part []byte) error {
	long := part[len(part)-1] != '\n'
	switch p.st {
	case psStatus, psHeader:
		p.budget -= int32(len(part))
		if p.budget < 0 {
			return errHeaderTooBig
		}
		if long {
			if p.st == psStatus {
				return errLineTooLong
			}
			return p.longHeader(part)
		}
		line := trimEOL(part)
		if p.st == psStatus {
			return p.statusLine(line)
		}
		if len(line) == 0 {
			return p.endHeader()
		}
		if line[0] == ' ' || line[0] == '\t' {
			// obs-fold: continues the previous line's value. Harmless for a
			// header ignored here; for an interpreted one, refuse to guess.
			if p.first || p.lastTracked {
				return errHeaderLine
			}
			return nil
		}
		p.first = false
		return p.field(line)
	case psChunkSize:
		if long {
			return errLineTooLong
		}
		line := trimEOL(part)
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i] // chunk extensions are ignored
		}
		n, ok := parseHex(trimOWS(line))
		if !ok {
			return errChunkSize
		}
		if n == 0 {
			p.st, p.budget = psTrailer, headerMax
			return nil
		}
		p.st, p.remain = psChunkData, n
		return nil
	case psTrailer:
		p.budget -= int32(len(part))
		if p.budget < 0 {
			return errTrailerTooBig
		}
		// Trailer fields are not interpreted: their parts count against
		// the budget as fast.go's readChunked counts them. Only an empty
		// line of its own ends the trailer.
		cont := p.inLong
		p.inLong = long
		if !long && !cont && len(trimEOL(part)) == 0 {
			p.st = psDone
		}
		return nil
	}
	return nil
}

// statusLine checks "HTTP/1.1 200 OK": version, space, three digits, then
// the end or a space and a reason phrase (which may be empty).
func (p *parser) statusLine(line []byte) error {
	if len(line) < 12 || string(line[:7]) != "HTTP/1." || !isDigit(line[7]) || line[8] != ' ' ||
		line[9] < '1' || line[9] > '9' || !isDigit(line[10]) || !isDigit(line[11]) ||
		(len(line) > 12 && line[12] != ' ') {
		return errStatusLine
	}
	p.minor = line[7]
	p.status = int16(line[9]-'0')*100 + int16(line[10]-'0')*10 + int16(line[11]-'0')
	p.st = psHeader
	return nil
}

// longHeader judges the first lineMax bytes of a longer header line: fine
// if it is not one the parser interprets (a long Content-Security-Policy,
// say); its rest is skipped.
func (p *parser) longHeader(start []byte) error {
	i := bytes.IndexByte(start, ':')
	if i <= 0 {
		return errLineTooLong
	}
	name := start[:i]
	if equalFold(name, "content-length") || equalFold(name, "transfer-encoding") || equalFold(name, "connection") {
		return errLineTooLong
	}
	p.first, p.lastTracked = false, false
	p.st, p.part = psSkipHeader, 0
	return nil
}

// endHeader acts on the end of a header section.
func (p *parser) endHeader() error {
	if p.status < 200 {
		if p.status == 101 {
			return errSwitching
		}
		// Interim response (100 Continue, 103 Early Hints): no body, the
		// final response follows. The shared budget bounds how many.
		*p = parser{budget: p.budget, length: -1, first: true, carry: p.carry, carryLen: p.carryLen, d: p.d, who: p.who}
		return nil
	}
	switch {
	case p.status == 204 || p.status == 304:
		// No body whatever the header says.
		p.st = psDone
	case p.chunked:
		p.st = psChunkSize
		if p.length >= 0 || p.minor == '0' {
			// Both framings at once, or chunked in HTTP/1.0: the message is
			// suspect (RFC 9112 §6.1, §6.3); do not trust what follows it.
			p.noKeep = true
		}
	case p.length == 0:
		p.st = psDone
	case p.length > 0:
		p.st, p.remain = psBody, p.length
	default:
		// Delimited by the end of the connection.
		p.st, p.noKeep = psUntilEOF, true
	}
	return nil
}

// field interprets one header line.
func (p *parser) field(line []byte) error {
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
	p.lastTracked = true
	switch {
	case equalFold(name, "content-length"):
		n, ok := parseLength(value)
		if !ok {
			return errContentLength
		}
		if p.length >= 0 && p.length != n {
			return errTwoLengths
		}
		p.length = n
	case equalFold(name, "transfer-encoding"):
		if p.chunked || !equalFold(value, "chunked") {
			// Codings other than chunked alone are not implemented; a
			// repeated header would be a second coding.
			return errTransferEnc
		}
		p.chunked = true
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
				p.close = true
			case equalFold(tok, "keep-alive"):
				p.keepAlive = true
			}
		}
	default:
		p.lastTracked = false
	}
	if p.d != nil && p.status >= 200 {
		// Every field is the driver's (a Set-Cookie, a Location): an
		// obs-fold continuation of any is refused rather than cut off.
		p.lastTracked = true
		p.d.Field(p.who, name, value)
	}
	return nil
}

// end tells the parser that the connection ended (rerr nil: end of stream)
// or failed with rerr after at least one byte of the response. It returns
// nil when that completes the response (a body delimited by the end of the
// connection), else the error of the request. A pending partial line is
// taken from the header budget first, as fast.go's readLine does.
func (p *parser) end(rerr error) error {
	switch p.st {
	case psDone:
		return nil
	case psUntilEOF:
		if rerr == nil {
			p.st = psDone
			return nil
		}
		return bodyErr(rerr)
	case psBody, psChunkData:
		if rerr == nil {
			return errShortBody
		}
		return bodyErr(rerr)
	case psStatus, psHeader, psSkipHeader:
		if p.budget-p.carryLen-p.part < 0 {
			return errHeaderTooBig
		}
	case psTrailer:
		if p.budget-p.carryLen < 0 {
			return errTrailerTooBig
		}
	}
	if rerr == nil {
		return errShortResponse
	}
	return responseErr(rerr)
}

// responseErr wraps an error met before the body.
func responseErr(err error) error {
	if err == os.ErrDeadlineExceeded {
		return errResponseTimeout
	}
	return fmt.Errorf("evloop: read response: %w", err)
}

// bodyErr wraps an error met in the body.
func bodyErr(err error) error {
	if err == os.ErrDeadlineExceeded {
		return errBodyTimeout
	}
	return fmt.Errorf("evloop: read body: %w", err)
}

// trimEOL drops a line's LF and the CR before it, if any.
func trimEOL(line []byte) []byte {
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line
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
