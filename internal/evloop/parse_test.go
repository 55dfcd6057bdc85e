package evloop

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
)

// parseCase is a response as a server sends it (then closing the
// connection) and what reading one response from it gives.
type parseCase struct {
	name   string
	resp   string
	status int
	size   int64
	keep   bool
	used   int    // bytes of resp the response takes; 0: all of them
	err    string // substring of the error; "" for none
}

var long = strings.Repeat("a", 10000)

// parseCases are fast_test.go's TestFastResponses cases, and more.
var parseCases = []parseCase{
	{name: "http10 until EOF", resp: "HTTP/1.0 200 OK\r\n\r\nabc", status: 200, size: 3},
	{name: "http11 until EOF", resp: "HTTP/1.1 200 OK\r\nX: y\r\n\r\n" + long, status: 200, size: 10000},
	{name: "http10 keep-alive", resp: "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nhi", status: 200, size: 2, keep: true},
	{name: "http10 length", resp: "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi", status: 200, size: 2},
	{name: "no reason", resp: "HTTP/1.1 201\r\nContent-Length: 0\r\n\r\n", status: 201, keep: true},
	{name: "empty reason", resp: "HTTP/1.1 202 \r\nContent-Length: 0\r\n\r\n", status: 202, keep: true},
	{name: "bare LF", resp: "HTTP/1.1 200 OK\nContent-Length: 1\n\nx", status: 200, size: 1, keep: true},
	{name: "case", resp: "HTTP/1.1 200 OK\r\ncontent-LENGTH:3\r\nCONNECTION: Close\r\n\r\nabc", status: 200, size: 3},
	{name: "connection list", resp: "HTTP/1.1 200 OK\r\nConnection: keep-alive, \tclose \r\nContent-Length: 0\r\n\r\n", status: 200},
	{name: "same length twice", resp: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", status: 200, size: 1, keep: true},
	{name: "chunked", resp: "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n3;ext=1\r\nabc\r\nA \r\n0123456789\r\n0\r\nTrailer: x\r\n\r\n", status: 200, size: 13, keep: true},
	{name: "chunked extensions and trailers", resp: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b;c=\"d;e\"\r\nhello\r\n1 ; x\r\n!\r\n0;last\r\nX-Sum: 1\r\nX-Other: 2\r\n\r\n", status: 200, size: 6, keep: true},
	{name: "chunked no trailer", resp: "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n", status: 200, keep: true},
	{name: "chunked and length", resp: "HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n", status: 200, size: 1},
	{name: "chunked http10", resp: "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n1\r\nx\r\n0\r\n\r\n", status: 200, size: 1},
	{name: "interim", resp: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", status: 200, size: 5, keep: true},
	{name: "interim close dropped", resp: "HTTP/1.1 100 Continue\r\nConnection: close\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", status: 200, keep: true},
	{name: "204 with length", resp: "HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n", status: 204, keep: true},
	{name: "304 chunked", resp: "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n", status: 304, keep: true},
	{name: "long header ignored", resp: "HTTP/1.1 200 OK\r\nContent-Security-Policy: " + long + "\r\nContent-Length: 1\r\n\r\nx", status: 200, size: 1, keep: true},
	{name: "fold ignored", resp: "HTTP/1.1 200 OK\r\nX-A: 1\r\n 2\r\nContent-Length: 1\r\n\r\nx", status: 200, size: 1, keep: true},
	{name: "long trailer", resp: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: " + long + "\r\n\r\n", status: 200, keep: true},
	{name: "big body", resp: "HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n" + strings.Repeat("z", 200000), status: 200, size: 200000, keep: true},
	{name: "big chunks", resp: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n11170\r\n" + strings.Repeat("z", 70000) + "\r\n11170\r\n" + strings.Repeat("z", 70000) + "\r\n0\r\n\r\n", status: 200, size: 140000, keep: true},
	{name: "two responses", resp: helloResp + helloResp, status: 200, size: 11, keep: true, used: len(helloResp)},
	{name: "response and junk", resp: helloResp + "junk", status: 200, size: 11, keep: true, used: len(helloResp)},

	// Lines at the limit: lineMax bytes with their LF, or one more.
	{name: "status line at limit", resp: "HTTP/1.1 200 " + strings.Repeat("r", lineMax-15) + "\r\nContent-Length: 0\r\n\r\n", status: 200, keep: true},
	{name: "status line over limit", resp: "HTTP/1.1 200 " + strings.Repeat("r", lineMax-14) + "\r\nContent-Length: 0\r\n\r\n", err: "line too long"},
	{name: "length line at limit", resp: "HTTP/1.1 200 OK\r\nContent-Length:" + strings.Repeat(" ", lineMax-18) + "1\r\n\r\nx", status: 200, size: 1, keep: true},
	{name: "length line over limit", resp: "HTTP/1.1 200 OK\r\nContent-Length:" + strings.Repeat(" ", lineMax-17) + "1\r\n\r\nx", err: "line too long"},
	{name: "chunk line at limit", resp: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;" + strings.Repeat("e", lineMax-4) + "\r\nx\r\n0\r\n\r\n", status: 200, size: 1, keep: true},
	{name: "chunk line over limit", resp: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;" + strings.Repeat("e", lineMax-3) + "\r\nx\r\n0\r\n\r\n", err: "line too long"},
	{name: "long line without colon", resp: "HTTP/1.1 200 OK\r\nX" + long + "\r\n\r\n", err: "line too long"},
	{name: "long fold ignored", resp: "HTTP/1.1 200 OK\r\nX-A: 1\r\n x:" + long + "\r\nContent-Length: 0\r\n\r\n", status: 200, keep: true},
	// A trailer line whose first lineMax bytes leave only its end, LF or
	// CRLF, for the next part: that part ends the line, not the trailer
	// (as fast.go's readChunked reads it).
	{name: "trailer line across the limit", resp: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: " + strings.Repeat("t", lineMax-4) + "\r\n\r\n",
		status: 200, keep: true},
	{name: "trailer line at the limit", resp: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: " + strings.Repeat("t", lineMax-3) + "\r\n\r\n",
		status: 200, keep: true},
	{name: "trailer line at the limit, bare LF", resp: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: " + strings.Repeat("t", lineMax-3) + "\n\n",
		status: 200, keep: true},

	{name: "http2", resp: "HTTP/2 200 OK\r\n\r\n", err: "malformed status line"},
	{name: "garbage", resp: "hello\r\n\r\n", err: "malformed status line"},
	{name: "two-digit code", resp: "HTTP/1.1 20 OK\r\n\r\n", err: "malformed status line"},
	{name: "code glued", resp: "HTTP/1.1 200OK\r\n\r\n", err: "malformed status line"},
	{name: "code zero", resp: "HTTP/1.1 099 X\r\n\r\n", err: "malformed status line"},
	{name: "CR CR", resp: "HTTP/1.1 200\r\r\n\r\n", err: "malformed status line"},
	{name: "bad length", resp: "HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n", err: "bad Content-Length"},
	{name: "negative length", resp: "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", err: "bad Content-Length"},
	{name: "huge length", resp: "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n", err: "bad Content-Length"},
	{name: "length list", resp: "HTTP/1.1 200 OK\r\nContent-Length: 1, 1\r\n\r\nx", err: "bad Content-Length"},
	{name: "two lengths", resp: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx", err: "conflicting Content-Length"},
	{name: "gzip", resp: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", err: "unsupported Transfer-Encoding"},
	{name: "chunked twice", resp: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", err: "unsupported Transfer-Encoding"},
	{name: "no colon", resp: "HTTP/1.1 200 OK\r\nContent-Length 1\r\n\r\nx", err: "malformed header line"},
	{name: "space before colon", resp: "HTTP/1.1 200 OK\r\nContent-Length : 1\r\n\r\nx", err: "malformed header line"},
	{name: "first line folded", resp: "HTTP/1.1 200 OK\r\n Content-Length: 1\r\n\r\nx", err: "malformed header line"},
	{name: "connection folded", resp: "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n close\r\nContent-Length: 1\r\n\r\nx", err: "malformed header line"},
	{name: "101", resp: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n", err: "unexpected 101"},
	{name: "bad chunk size", resp: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", err: "bad chunk size"},
	{name: "chunk size overflow", resp: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n", err: "bad chunk size"},
	{name: "chunk without CRLF", resp: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nxy\r\n0\r\n\r\n", err: "malformed chunked encoding"},
	{name: "chunk CRLF cut", resp: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nxy", err: "unexpected EOF"},
	{name: "chunk size line too long", resp: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;" + long + "\r\nx\r\n0\r\n\r\n", err: "line too long"},
	{name: "long Content-Length line", resp: "HTTP/1.1 200 OK\r\nContent-Length: " + long + "\r\n\r\n", err: "line too long"},
	{name: "long status line", resp: "HTTP/1.1 200 " + long + "\r\n\r\n", err: "line too long"},
	{name: "huge header", resp: "HTTP/1.1 200 OK\r\n" + strings.Repeat("X-Pad: "+long+"\r\n", 7) + "\r\n", err: "header too large"},
	{name: "endless interim", resp: strings.Repeat("HTTP/1.1 100 Continue\r\n\r\n", 3000), err: "header too large"},
	{name: "huge trailer", resp: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n" + strings.Repeat("T: "+long+"\r\n", 7) + "\r\n", err: "trailer too large"},
	{name: "header too large at EOF", resp: "HTTP/1.1 200 OK\r\n" + strings.Repeat("X-Pad: "+strings.Repeat("p", 4000)+"\r\n", 16) + "X-Last: " + strings.Repeat("p", 2000), err: "header too large"},
	{name: "short body", resp: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", err: "read body: unexpected EOF"},
	{name: "short chunk", resp: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc", err: "read body: unexpected EOF"},
	{name: "short header", resp: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n", err: "read response: unexpected EOF"},
	{name: "short trailer", resp: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: 1\r\n", err: "read response: unexpected EOF"},
	{name: "short after interim", resp: "HTTP/1.1 100 Continue\r\n\r\n", err: "read response: unexpected EOF"},
}

const helloResp = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world"

// parseResult is what parsing a stream gave.
type parseResult struct {
	status int
	size   int64
	keep   bool
	used   int
	err    error
}

// parseSplit feeds resp to a parser in the pieces split gives (lengths),
// then ends the stream if the response is not complete.
func parseSplit(resp string, split func(rest int) int) (parseResult, *carryPool) {
	var pool carryPool
	var p parser
	p.reset(&pool)
	b := []byte(resp)
	used := 0
	for used < len(b) {
		k := min(split(len(b)-used), len(b)-used)
		piece := make([]byte, k) // a fresh slice: the parser may keep nothing of it
		copy(piece, b[used:used+k])
		n, err := p.feed(piece, &pool)
		used += n
		if err != nil {
			return parseResult{err: err, used: used}, &pool
		}
		if p.done() {
			break
		}
		for i := range piece {
			piece[i] = 0xff // what the parser kept must have been copied
		}
	}
	if !p.done() {
		if err := p.end(nil); err != nil {
			return parseResult{err: err, used: used}, &pool
		}
	}
	r := parseResult{status: int(p.status), size: p.size, keep: p.keep(), used: used}
	p.reset(&pool)
	return r, &pool
}

func whole(rest int) int    { return rest }
func bytewise(rest int) int { return 1 }
func randomSplit(seed uint64) func(int) int {
	rng := rand.New(rand.NewPCG(seed, 1))
	return func(rest int) int {
		if rng.IntN(4) == 0 {
			return 1 + rng.IntN(8000)
		}
		return 1 + rng.IntN(40)
	}
}

func TestParse(t *testing.T) {
	for _, tc := range parseCases {
		t.Run(tc.name, func(t *testing.T) {
			wantUsed := tc.used
			if wantUsed == 0 {
				wantUsed = len(tc.resp)
			}
			splits := []struct {
				name  string
				split func(int) int
			}{{"whole", whole}, {"bytewise", bytewise}}
			for seed := range uint64(5) {
				splits = append(splits, struct {
					name  string
					split func(int) int
				}{fmt.Sprintf("random%d", seed), randomSplit(seed)})
			}
			for _, s := range splits {
				got, pool := parseSplit(tc.resp, s.split)
				if tc.err != "" {
					if got.err == nil || !strings.Contains(got.err.Error(), tc.err) || !strings.HasPrefix(got.err.Error(), "evloop: ") {
						t.Errorf("%s: got %+v, want error %q", s.name, got, tc.err)
					}
				} else if got.err != nil || got.status != tc.status || got.size != tc.size || got.keep != tc.keep || got.used != wantUsed {
					t.Errorf("%s: got %+v, want %d %d keep %v used %d", s.name, got, tc.status, tc.size, tc.keep, wantUsed)
				}
				// A split line borrows one buffer at a time, given back.
				if len(pool.free) > 1 {
					t.Errorf("%s: %d carry buffers in the pool, want at most 1", s.name, len(pool.free))
				}
			}
		})
	}
}

// TestParseEnd covers the end of the stream and read errors at each place
// of a response.
func TestParseEnd(t *testing.T) {
	rerr := errors.New("read: connection reset by peer")
	for _, tc := range []struct {
		prefix string
		want   string // for the end of the stream
		wantR  string // for rerr
	}{
		{"HTTP/1.1 200 OK\r\nContent-Le", "evloop: read response: unexpected EOF", "evloop: read response: read: connection reset by peer"},
		{"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", "evloop: read body: unexpected EOF", "evloop: read body: read: connection reset by peer"},
		{"HTTP/1.1 200 OK\r\n\r\nab", "", "evloop: read body: read: connection reset by peer"},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", "evloop: read body: unexpected EOF", "evloop: read body: read: connection reset by peer"},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5", "evloop: read response: unexpected EOF", "evloop: read response: read: connection reset by peer"},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r", "evloop: read response: unexpected EOF", "evloop: read response: read: connection reset by peer"},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: 1", "evloop: read response: unexpected EOF", "evloop: read response: read: connection reset by peer"},
	} {
		for _, e := range []error{nil, rerr, os.ErrDeadlineExceeded} {
			var pool carryPool
			var p parser
			p.reset(&pool)
			if _, err := p.feed([]byte(tc.prefix), &pool); err != nil || p.done() {
				t.Fatalf("%q: %v done=%v", tc.prefix, err, p.done())
			}
			got := p.end(e)
			want := tc.want
			switch e {
			case rerr:
				want = tc.wantR
			case os.ErrDeadlineExceeded:
				want = strings.Replace(tc.wantR, "read: connection reset by peer", "i/o timeout", 1)
			}
			if (got == nil && want != "") || (got != nil && got.Error() != want) {
				t.Errorf("%q end(%v) = %v, want %q", tc.prefix, e, got, want)
			}
			if e == rerr && got != nil && !errors.Is(got, rerr) {
				t.Errorf("%q: %v does not wrap the read error", tc.prefix, got)
			}
			if e == nil && got != nil && !errors.Is(got, io.ErrUnexpectedEOF) {
				t.Errorf("%q: %v does not wrap io.ErrUnexpectedEOF", tc.prefix, got)
			}
			if e == os.ErrDeadlineExceeded && !errors.Is(got, os.ErrDeadlineExceeded) {
				t.Errorf("%q: %v does not wrap os.ErrDeadlineExceeded", tc.prefix, got)
			}
		}
	}
}

// FuzzParse checks that the parser's result does not depend on how the
// bytes are split, and stays within the bytes given.
func FuzzParse(f *testing.F) {
	for _, tc := range parseCases {
		if len(tc.resp) < 5000 {
			f.Add([]byte(tc.resp), uint64(1))
		}
	}
	f.Fuzz(func(t *testing.T, resp []byte, seed uint64) {
		want, _ := parseSplit(string(resp), whole)
		for _, split := range []func(int) int{bytewise, randomSplit(seed)} {
			got, pool := parseSplit(string(resp), split)
			if got.status != want.status || got.size != want.size || got.keep != want.keep || got.used != want.used ||
				(got.err == nil) != (want.err == nil) || (got.err != nil && got.err.Error() != want.err.Error()) {
				t.Fatalf("split %+v, whole %+v", got, want)
			}
			if len(pool.free) > 1 {
				t.Fatalf("%d carry buffers", len(pool.free))
			}
		}
		if want.err == nil && (want.status < 200 || want.status > 999 || want.size < 0 || want.size > int64(len(resp)) || want.used > len(resp)) {
			t.Fatalf("%+v from %d bytes", want, len(resp))
		}
		if want.err != nil && !strings.HasPrefix(want.err.Error(), "evloop: ") {
			t.Fatalf("error %q lacks the package prefix", want.err)
		}
	})
}
