package session

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestWriteRequestAsNetHTTP: writeRequest writes what req.Write writes,
// or leaves the request to it.
func TestWriteRequestAsNetHTTP(t *testing.T) {
	type tc struct {
		name    string
		method  string
		url     string
		body    string // sent with its length, as Browser.Do sends one
		header  http.Header
		host    string
		close   bool
		handled bool
	}
	form := "csrfmiddlewaretoken=abc&login=alice&password=pw"
	cases := []tc{
		{name: "browser GET", method: "GET", url: "http://127.0.0.1:8000/dashboard/",
			header: http.Header{"User-Agent": {UserAgent}, "Referer": {"http://127.0.0.1:8000/accounts/login/"}, "Cookie": {"csrftoken=x; sessionid=y"}}, handled: true},
		{name: "login POST", method: "POST", url: "http://127.0.0.1:8000/accounts/login/?next=/a%20b/&x=1", body: form,
			header: http.Header{"User-Agent": {UserAgent}, "Content-Type": {"application/x-www-form-urlencoded"}, "Referer": {"http://127.0.0.1:8000/accounts/login/"}}, handled: true},
		{name: "default user agent, empty method", url: "http://example.test/", handled: true},
		{name: "empty user agent", method: "GET", url: "http://example.test/", header: http.Header{"User-Agent": {""}}, handled: true},
		{name: "user agent without a value", method: "GET", url: "http://example.test/", header: http.Header{"User-Agent": nil}, handled: true},
		{name: "values to clean", method: "GET", url: "http://example.test/p",
			header: http.Header{"X-A": {"  padded\t", "line\r\nbreak", "two\n\nlines"}, "x-lower": {"v"}, "Bad Name": {"dropped"}, "User-Agent": {" ua\n "},
				"Content-Length": {"99"}, "Host": {"other"}, "Transfer-Encoding": {"chunked"}, "Trailer": {"T"}}, handled: true},
		{name: "many headers", method: "GET", url: "http://example.test/", header: manyHeaders(40), handled: true},
		{name: "POST without a body", method: "POST", url: "http://example.test/", handled: true},
		{name: "PUT without a body", method: "PUT", url: "http://example.test/", handled: true},
		{name: "PATCH with one", method: "PATCH", url: "http://example.test/", body: "{}", handled: true},
		{name: "DELETE without a body", method: "DELETE", url: "http://example.test/", handled: true},
		{name: "close", method: "GET", url: "http://example.test/", close: true, handled: true},
		{name: "close asked already", method: "GET", url: "http://example.test/", close: true, header: http.Header{"Connection": {"keep-alive, Close"}}, handled: true},
		{name: "close in another token", method: "GET", url: "http://example.test/", close: true, header: http.Header{"Connection": {"closer"}}, handled: true},
		{name: "close spaced", method: "GET", url: "http://example.test/", close: true, header: http.Header{"Connection": {"x close"}}, handled: true},
		{name: "Host set", method: "GET", url: "http://127.0.0.1:8000/", host: "app.example.test", handled: true},
		{name: "unicode host", method: "GET", url: "http://bücher.example:8080/", handled: true},
		{name: "IPv6 zone", method: "GET", url: "http://[fe80::1%25eth0]:8080/x", handled: true},
		{name: "invalid Host", method: "GET", url: "http://example.test/", host: "a b", handled: true},
		{name: "query only", method: "GET", url: "http://example.test?q=1", handled: true},
		{name: "opaque", method: "GET", url: "mailto:someone@example.test", handled: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mk := func() *http.Request {
				var body io.Reader
				if c.body != "" {
					body = strings.NewReader(c.body)
				}
				r, err := http.NewRequest(c.method, c.url, body)
				if err != nil {
					t.Fatal(err)
				}
				r.Method = c.method
				for k, vs := range c.header {
					r.Header[k] = vs
				}
				r.Host = c.host
				if c.host == "" && r.URL != nil {
					r.Host = ""
				}
				r.Close = c.close
				return r
			}
			var want bytes.Buffer
			werr := mk().Write(&want)
			var got bytes.Buffer
			bw := bufio.NewWriter(&got)
			handled, gerr := writeRequest(bw, mk())
			bw.Flush()
			if handled != c.handled {
				t.Fatalf("handled %v", handled)
			}
			if !handled {
				if got.Len() > 0 {
					t.Fatalf("wrote %q before leaving it", got.String())
				}
				return
			}
			if (werr == nil) != (gerr == nil) || got.String() != want.String() {
				t.Errorf("wrote %q (%v)\nwant %q (%v)", got.String(), gerr, want.String(), werr)
			}
		})
	}

	// Left to req.Write: a body of unknown length, a Transfer-Encoding, a trailer.
	r, _ := http.NewRequest("POST", "http://example.test/", io.MultiReader(strings.NewReader("x")))
	r.ContentLength = 0
	r2, _ := http.NewRequest("POST", "http://example.test/", strings.NewReader("x"))
	r2.TransferEncoding = []string{"chunked"}
	r3, _ := http.NewRequest("GET", "http://example.test/", nil)
	r3.Trailer = http.Header{"T": nil}
	for i, r := range []*http.Request{r, r2, r3} {
		var got bytes.Buffer
		bw := bufio.NewWriter(&got)
		if handled, _ := writeRequest(bw, r); handled || bw.Buffered() > 0 {
			t.Errorf("request %d: handled", i)
		}
	}

	// A body shorter or longer than its ContentLength fails as in net/http.
	for _, n := range []int64{3, 5} {
		mk := func() *http.Request {
			r, _ := http.NewRequest("POST", "http://example.test/", io.NopCloser(strings.NewReader("four")))
			r.ContentLength = n
			return r
		}
		werr := mk().Write(io.Discard)
		_, gerr := writeRequest(bufio.NewWriter(io.Discard), mk())
		if werr == nil || gerr == nil || werr.Error() != gerr.Error() {
			t.Errorf("ContentLength %d: %v, want %v", n, gerr, werr)
		}
	}
}

func manyHeaders(n int) http.Header {
	h := http.Header{}
	for i := range n {
		h.Set("X-H"+string(rune('a'+i%26))+string(rune('a'+i/26)), "v")
	}
	return h
}

func BenchmarkWriteRequest(b *testing.B) {
	r, _ := http.NewRequest("POST", "http://127.0.0.1:8000/accounts/login/", nil)
	r.Header = http.Header{"User-Agent": {UserAgent}, "Content-Type": {"application/x-www-form-urlencoded"}, "Referer": {"http://127.0.0.1:8000/accounts/login/"}, "Cookie": {"csrftoken=abc"}}
	body := []byte("csrfmiddlewaretoken=abc&login=alice&password=pw")
	bw := bufio.NewWriter(io.Discard)
	for _, name := range []string{"writeRequest", "Request.Write"} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
				if name == "writeRequest" {
					writeRequest(bw, r)
				} else {
					r.Write(bw)
				}
				bw.Flush()
			}
		})
	}
}
