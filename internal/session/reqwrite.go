package session

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// writeRequest writes req to w as req.Write does, byte for byte, for the
// requests a browser sends: no body, or one of a known length; no
// Transfer-Encoding, no trailer. It reports false, having written
// nothing, for any other request, which the caller writes with req.Write.
// req.Write's formatting (fmt), its transfer writer and its header sorter
// cost a tenth of what a browser user spends outside the kernel on a
// login (TestWriteRequestAsNetHTTP holds the two to the same bytes).
//
// It calls no trace hook: the caller uses it only without a trace.
func writeRequest(w *bufio.Writer, req *http.Request) (bool, error) {
	noBody := req.Body == nil || req.Body == http.NoBody
	if len(req.TransferEncoding) > 0 || req.Trailer != nil || req.URL == nil || !noBody && req.ContentLength <= 0 {
		return false, nil
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	host, err := httpguts.PunycodeHostPort(host)
	if err != nil {
		closeReqBody(req)
		return true, err
	}
	if !httpguts.ValidHostHeader(host) {
		host = ""
	}
	host = removeZone(host)
	ruri := req.URL.RequestURI()
	if strings.ContainsFunc(ruri, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		closeReqBody(req)
		return true, fmt.Errorf("net/http: can't write control character in Request.URL")
	}
	method := req.Method
	if method == "" {
		method = "GET"
	}
	w.WriteString(method)
	w.WriteByte(' ')
	w.WriteString(ruri)
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(host)
	w.WriteString("\r\n")
	ua := "Go-http-client/1.1"
	if vs, ok := req.Header["User-Agent"]; ok {
		ua = ""
		if len(vs) > 0 {
			ua = vs[0]
		}
	}
	if ua != "" {
		w.WriteString("User-Agent: ")
		writeHeaderValue(w, ua)
		w.WriteString("\r\n")
	}
	if req.Close && !hasCloseToken(req.Header["Connection"]) {
		w.WriteString("Connection: close\r\n")
	}
	// Content-Length: the body's; 0 for a POST, PUT or PATCH without one.
	switch {
	case req.ContentLength > 0 && !noBody:
		w.WriteString("Content-Length: ")
		w.WriteString(strconv.FormatInt(req.ContentLength, 10))
		w.WriteString("\r\n")
	case method == "POST" || method == "PUT" || method == "PATCH":
		w.WriteString("Content-Length: 0\r\n")
	}
	var keyBuf [16]string
	keys := keyBuf[:0]
	for k := range req.Header {
		switch k {
		case "Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer":
			continue
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		for _, v := range req.Header[k] {
			w.WriteString(k)
			w.WriteString(": ")
			writeHeaderValue(w, v)
			w.WriteString("\r\n")
		}
	}
	_, err = w.WriteString("\r\n")
	if noBody {
		return true, err
	}
	// The body: exactly ContentLength bytes, as net/http's transfer writer
	// checks.
	n, err := io.Copy(w, io.LimitReader(req.Body, req.ContentLength))
	if err == nil {
		var extra int64
		extra, err = io.Copy(io.Discard, req.Body)
		n += extra
	}
	if cerr := req.Body.Close(); err == nil {
		err = cerr
	}
	if err == nil && n != req.ContentLength {
		err = fmt.Errorf("http: ContentLength=%d with Body length %d", req.ContentLength, n)
	}
	return true, err
}

// writeHeaderValue writes v with new lines as spaces and the white space
// at its ends trimmed, as net/http writes a header value.
func writeHeaderValue(w *bufio.Writer, v string) {
	start, end := 0, len(v)
	for start < end && isHeaderSpace(v[start]) {
		start++
	}
	for end > start && isHeaderSpace(v[end-1]) {
		end--
	}
	v = v[start:end]
	for {
		i := strings.IndexAny(v, "\r\n")
		if i < 0 {
			w.WriteString(v)
			return
		}
		w.WriteString(v[:i])
		w.WriteByte(' ')
		v = v[i+1:]
	}
}

// isHeaderSpace is textproto's white space: what TrimString trims.
func isHeaderSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\n' || b == '\r' }

// hasCloseToken reports whether the first value of a Connection header
// holds the token "close", as net/http's hasToken finds it: ASCII case
// ignored, bounded by the value's ends, spaces, commas or tabs.
func hasCloseToken(vs []string) bool {
	if len(vs) == 0 {
		return false
	}
	const token = "close"
	v := vs[0]
	bound := func(b byte) bool { return b == ' ' || b == ',' || b == '\t' }
	for sp := 0; sp+len(token) <= len(v); sp++ {
		if sp > 0 && !bound(v[sp-1]) {
			continue
		}
		if end := sp + len(token); end != len(v) && !bound(v[end]) {
			continue
		}
		if eqLower([]byte(v[sp:sp+len(token)]), token) {
			return true
		}
	}
	return false
}

// removeZone removes the IPv6 zone of a host, as net/http does (RFC 6874).
func removeZone(host string) string {
	if !strings.HasPrefix(host, "[") {
		return host
	}
	i := strings.LastIndex(host, "]")
	if i < 0 {
		return host
	}
	j := strings.LastIndex(host[:i], "%")
	if j < 0 {
		return host
	}
	return host[:j] + host[i:]
}
