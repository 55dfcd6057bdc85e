package live

import (
	"bytes"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/stampede-load/stampede/internal/report"
	"github.com/stampede-load/stampede/internal/runner"
)

// assets are the page, its script and its style; the chart library and the
// report's style come from internal/report, as report.html inlines them.
//
//go:embed assets
var assets embed.FS

const reportFile = report.HTMLFile

var osStat = os.Stat

func itoa(i int) string { return strconv.Itoa(i) }

// maxControlBody bounds a control request's body.
const maxControlBody = 4 << 10

// writeWait bounds each write of the event stream: a page that stops
// reading is dropped.
const writeWait = 10 * time.Second

// pageCSP lets the page run its own script and nothing else: no inline
// script, no other origin, no framing (a page of another site cannot
// overlay the Stop button).
const pageCSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// reportCSP is report.html's: its script and style are inline, it fetches
// nothing.
const reportCSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

func (s *Server) routes() {
	m := http.NewServeMux()
	m.HandleFunc("GET /{$}", s.index)
	m.HandleFunc("GET /assets/{name}", s.asset)
	m.HandleFunc("GET /api/state", s.state)
	m.HandleFunc("GET /api/events", s.events)
	m.HandleFunc("/api/load", s.setLoad)
	m.HandleFunc("/api/stop", s.stop)
	m.HandleFunc("GET /"+reportFile, s.report)
	if s.o.Metrics != nil {
		m.Handle("GET /metrics", s.o.Metrics)
	}
	s.mux = m
}

// ServeHTTP serves the page, its assets and its API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Content-Security-Policy", pageCSP)
	if s.loopback && !loopbackHost(r.Host) {
		// A name that is not this host's loopback, on a loopback
		// listener: a page of another site whose name was rebound to
		// 127.0.0.1 (DNS rebinding) would be same-origin with us.
		s.refuse(w, http.StatusMisdirectedRequest, "host "+strconv.Quote(r.Host)+" is not this host's loopback: open the page as http://127.0.0.1:PORT/ or http://localhost:PORT/")
		return
	}
	s.mux.ServeHTTP(w, r)
}

// loopbackHost reports whether a Host header names the loopback.
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (s *Server) index(w http.ResponseWriter, r *http.Request) {
	b, _ := assets.ReadFile("assets/index.html")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(b)
}

// assetFiles are the files under /assets/: the page's own, then the
// report's.
var assetFiles = map[string]struct{ file, typ string }{
	"live.js":    {"live:live.js", "text/javascript; charset=utf-8"},
	"live.css":   {"live:live.css", "text/css; charset=utf-8"},
	"uPlot.js":   {"report:uPlot.iife.min.js", "text/javascript; charset=utf-8"},
	"uPlot.css":  {"report:uPlot.min.css", "text/css; charset=utf-8"},
	"report.css": {"report:report.css", "text/css; charset=utf-8"},
}

func (s *Server) asset(w http.ResponseWriter, r *http.Request) {
	a, ok := assetFiles[r.PathValue("name")]
	if !ok {
		http.NotFound(w, r)
		return
	}
	var b []byte
	if name, ok := strings.CutPrefix(a.file, "live:"); ok {
		b, _ = assets.ReadFile(path.Join("assets", name))
	} else {
		b = report.Asset(strings.TrimPrefix(a.file, "report:"))
	}
	w.Header().Set("Content-Type", a.typ)
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(b)
}

// load returns the load in force and the model, from the Control; read
// before Server.mu is taken.
func (s *Server) load() (runner.LoadChange, string) {
	if s.o.Control == nil {
		return runner.LoadChange{}, ""
	}
	return s.o.Control.Load(), s.o.Control.Model()
}

// snapshot returns the whole run so far, encoded.
func (s *Server) snapshot() []byte {
	cur, model := s.load()
	s.mu.Lock()
	defer s.mu.Unlock()
	b, _ := json.Marshal(s.st.message(true, time.Now(), cur, model))
	return b
}

func (s *Server) state(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(s.snapshot())
}

// page is one open event stream.
type page struct{ ch chan []byte }

// frame encodes one server-sent event.
func frame(event string, data []byte) []byte {
	var b bytes.Buffer
	b.WriteString("event: " + event + "\ndata: ")
	b.Write(data) // JSON: no newline in it
	b.WriteString("\n\n")
	return b.Bytes()
}

// events streams the run: the snapshot, then an update a second.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	cur, model := s.load()
	s.mu.Lock()
	if len(s.pages) >= MaxPages {
		s.mu.Unlock()
		s.refuse(w, http.StatusServiceUnavailable, "too many pages follow this run (at most "+itoa(MaxPages)+")")
		return
	}
	// The snapshot and the subscription under one lock: the updates that
	// follow are exactly those after it.
	snap, _ := json.Marshal(s.st.message(true, time.Now(), cur, model))
	p := &page{ch: make(chan []byte, 32)}
	s.pages[p] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.pages, p)
		s.mu.Unlock()
	}()

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	rc := http.NewResponseController(w)
	send := func(b []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(writeWait))
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !send(append([]byte("retry: 2000\n"), frame("snapshot", snap)...)) {
		return
	}
	ping := time.NewTicker(15 * time.Second)
	defer ping.Stop()
	for {
		select {
		case b, ok := <-p.ch:
			if !ok || !send(b) {
				return
			}
		case <-ping.C:
			if !send([]byte(": ping\n\n")) {
				return
			}
		case <-r.Context().Done():
			return
		case <-s.done:
			return
		}
	}
}

// push asks the pusher for an update.
func (s *Server) push() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// pusher sends each page what changed, when asked (every second, at a
// load change, at the end). A page that does not keep up is dropped: it
// reconnects and starts again from a snapshot.
func (s *Server) pusher() {
	for {
		select {
		case <-s.done:
			return
		case <-s.kick:
		}
		cur, model := s.load()
		s.mu.Lock()
		s.st.seq++
		b, err := json.Marshal(s.st.message(false, time.Now(), cur, model))
		if err == nil {
			f := frame("update", b)
			for p := range s.pages {
				select {
				case p.ch <- f:
				default:
					close(p.ch)
					delete(s.pages, p)
				}
			}
		}
		s.mu.Unlock()
	}
}

// report serves the run's report.html once the run is over.
func (s *Server) report(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	dir, ended := s.st.dir, s.st.end != nil
	s.mu.Unlock()
	if !ended || dir == "" {
		s.refuse(w, http.StatusNotFound, "report.html is written when the run ends")
		return
	}
	f, err := os.Open(filepath.Join(dir, reportFile))
	if err != nil {
		s.refuse(w, http.StatusNotFound, "no report.html in the run directory")
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		s.refuse(w, http.StatusInternalServerError, "report.html cannot be read")
		return
	}
	w.Header().Set("Content-Security-Policy", reportCSP)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	http.ServeContent(w, r, reportFile, st.ModTime(), f)
}

// refuse answers {"error": msg} with code.
func (s *Server) refuse(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// allowControl refuses a control request that is not allowed, and says
// so: controls off, a request from another site (a page elsewhere must
// not be able to stop or ramp a load test), a content type other than
// JSON (which an HTML form cannot send), or a missing or wrong token.
func (s *Server) allowControl(w http.ResponseWriter, r *http.Request) bool {
	switch {
	case r.Method != http.MethodPost:
		w.Header().Set("Allow", http.MethodPost)
		s.refuse(w, http.StatusMethodNotAllowed, "want POST")
		return false
	case s.o.ReadOnly:
		s.refuse(w, http.StatusForbidden, "the controls are off (--ui-readonly)")
		return false
	case s.o.Control == nil:
		s.refuse(w, http.StatusForbidden, "this run has no control")
		return false
	}
	if why := crossSite(r); why != "" {
		s.refuse(w, http.StatusForbidden, "cross-site request refused: "+why)
		return false
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		s.refuse(w, http.StatusUnsupportedMediaType, "want Content-Type: application/json")
		return false
	}
	if s.o.Token != "" && !bearer(r, s.o.Token) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="stampede"`)
		s.refuse(w, http.StatusUnauthorized, "the controls need the token printed at start: Authorization: Bearer TOKEN")
		return false
	}
	return true
}

// crossSite says why r comes from another origin than the page's, or "".
// A request without Origin, Referer or Sec-Fetch-Site is a script's
// (curl): browsers send Origin with every POST made by a page.
func crossSite(r *http.Request) string {
	if v := r.Header.Get("Sec-Fetch-Site"); v != "" && v != "same-origin" && v != "none" {
		return "Sec-Fetch-Site: " + v
	}
	if o := r.Header.Get("Origin"); o != "" {
		if !sameOrigin(o, r.Host) {
			return "Origin " + strconv.Quote(o) + " is not this page's"
		}
		return ""
	}
	if ref := r.Header.Get("Referer"); ref != "" && !sameOrigin(ref, r.Host) {
		return "Referer is not this page"
	}
	return ""
}

// sameOrigin reports whether the URL u (an Origin or a Referer) is on host.
func sameOrigin(u, host string) bool {
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.User != nil {
		return false
	}
	return host != "" && strings.EqualFold(p.Host, host)
}

// bearer reports whether r carries token as its Bearer token.
func bearer(r *http.Request, token string) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(token)) == 1
}

// loadRequest is the body of POST /api/load.
type loadRequest struct {
	Users       int     `json:"users"`
	SpawnRate   float64 `json:"spawn_rate"`
	ArrivalRate float64 `json:"arrival_rate"`
	MaxUsers    int     `json:"max_users"`
	// By is "ui" from the page, "api" (the default) from a script.
	By string `json:"by"`
}

// readBody decodes r's JSON body into v; an empty body is {} when empty
// is set.
func readBody(w http.ResponseWriter, r *http.Request, v any, empty bool) error {
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxControlBody))
	if err != nil {
		return errors.New("body too large")
	}
	if len(bytes.TrimSpace(b)) == 0 && empty {
		return nil
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	return nil
}

func checkBy(by string) (string, error) {
	switch by {
	case "":
		return "api", nil
	case "ui", "api":
		return by, nil
	}
	return "", errors.New(`by: want "ui" or "api"`)
}

func (s *Server) setLoad(w http.ResponseWriter, r *http.Request) {
	if !s.allowControl(w, r) {
		return
	}
	var req loadRequest
	if err := readBody(w, r, &req, false); err != nil {
		s.refuse(w, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	by, err := checkBy(req.By)
	if err != nil {
		s.refuse(w, http.StatusBadRequest, err.Error())
		return
	}
	cur, err := s.o.Control.SetLoad(runner.LoadChange{Users: req.Users, SpawnRate: req.SpawnRate,
		ArrivalRate: req.ArrivalRate, MaxUsers: req.MaxUsers, By: by})
	if err != nil {
		code := http.StatusBadRequest
		if strings.HasPrefix(err.Error(), "load:") { // the run's state, not the request
			code = http.StatusConflict
		}
		writeJSON(w, code, map[string]any{"error": err.Error(), "load": cur})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"load": cur, "model": s.o.Control.Model()})
}

func (s *Server) stop(w http.ResponseWriter, r *http.Request) {
	if !s.allowControl(w, r) {
		return
	}
	var req struct {
		By string `json:"by"`
	}
	if err := readBody(w, r, &req, true); err != nil {
		s.refuse(w, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	by, err := checkBy(req.By)
	if err != nil {
		s.refuse(w, http.StatusBadRequest, err.Error())
		return
	}
	s.o.Control.Stop(by)
	writeJSON(w, http.StatusAccepted, map[string]any{"stopping": true, "by": by})
}

// sortRows sorts endpoint rows as summary.json does: by name, then method.
func sortRows(rows []EndpointRow) {
	sort.SliceStable(rows, func(i, j int) bool {
		if rows[i].Name != rows[j].Name {
			return rows[i].Name < rows[j].Name
		}
		return rows[i].Method < rows[j].Method
	})
}
