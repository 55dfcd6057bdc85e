// Package rundir writes and reads a run directory: requests.csv,
// timeline.jsonl, evidence.jsonl and meta.json (the formats are documented
// in docs/run-directory.md). Writers are append-only and flushed at least
// once a second, so a run killed with kill -9 leaves every record up to the
// last flush readable; readers skip a torn last line.
package rundir

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/secret"
)

// File names inside a run directory.
const (
	MetaFile     = "meta.json"
	RequestsFile = "requests.csv"
	TimelineFile = "timeline.jsonl"
	EvidenceFile = "evidence.jsonl"
	SummaryFile  = "summary.json"
)

// RequestsHeader is the first line of requests.csv.
const RequestsHeader = "start_us,user,name,method,status,latency_us,connect_us,ttfb_us,bytes,outcome,reason,relogin"

// requestsHeader11 is the header of run directories written before the
// relogin column; they are read as well.
const requestsHeader11 = "start_us,user,name,method,status,latency_us,connect_us,ttfb_us,bytes,outcome,reason"

// Meta is meta.json.
type Meta struct {
	Tool      string    `json:"tool"`
	Version   string    `json:"version"`
	Run       string    `json:"run"`
	Target    string    `json:"target"`
	Host      string    `json:"host"`
	Command   []string  `json:"command"`
	Scenario  any       `json:"scenario,omitempty"` // secrets redacted
	Load      LoadFacts `json:"load"`
	Start     time.Time `json:"start"`
	End       time.Time `json:"end,omitzero"`
	Partial   bool      `json:"partial"`
	EndReason string    `json:"end_reason,omitempty"`
	Probes    []string  `json:"probes,omitempty"`
	Logs      []LogRef  `json:"logs,omitempty"`
	Dropped   int64     `json:"dropped"`
	Aborted   int64     `json:"aborted"`
	// SessionsLost counts the pages that sent a logged-in user back to
	// the login form; Relogins the logins users made again after that.
	SessionsLost int64 `json:"sessions_lost,omitempty"`
	Relogins     int64 `json:"relogins,omitempty"`
	// Thresholds are the scenario's thresholds as written, by endpoint:
	// "stampede diagnose" evaluates them again from summary.json.
	Thresholds map[string][]string `json:"thresholds,omitempty"`
	// Segment marks the run directory of one segment of a load split
	// across generators (stampede run --segment), or of their observer.
	Segment *Segment `json:"segment,omitempty"`
	// Segments marks a run directory merged from segments (stampede
	// merge): which were merged, which were missing or did not finish.
	Segments *Segments `json:"segments,omitempty"`
	// RequestsCSV is what requests.csv holds: "all", "off" (no file) or
	// "sample:P" (each request kept with probability P); empty (runs
	// written before it) is "all". RequestsRows counts the rows written.
	// The summary, the Locust files and the diagnosis count every request
	// whatever it says.
	RequestsCSV  string `json:"requests_csv,omitempty"`
	RequestsRows int64  `json:"requests_rows"`
	// LoadChanges are the load of a run that could be changed while it ran
	// (the live page, its HTTP API): the plan's at the start (by "plan"),
	// then every change, in order. Absent for a run that could not be
	// changed: its load is "load" from start to end.
	LoadChanges []LoadChange `json:"load_changes,omitempty"`
}

// LoadChange is one entry of meta.json's "load_changes": the load in force
// from T on, whole (a change's fields left unchanged are carried over):
//
//	{"t": "2026-...Z", "users": 200, "spawn_rate": 10, "by": "ui"}       // closed model
//	{"t": "2026-...Z", "arrival_rate": 50, "max_users": 500, "by": "api"} // open model
//
// By is "plan" (the load at the start), "ui" (the live page) or "api" (a
// script through the page's HTTP endpoints).
type LoadChange struct {
	T           time.Time `json:"t"`
	Users       int       `json:"users,omitempty"`
	SpawnRate   float64   `json:"spawn_rate,omitempty"`
	ArrivalRate float64   `json:"arrival_rate,omitempty"`
	MaxUsers    int       `json:"max_users,omitempty"`
	By          string    `json:"by"`
}

// Segment is meta.json's "segment" of one generator's part of a split load:
//
//	{
//	  "index": 1, "count": 3,               // segment 1 of 0..2; -1 for the observer
//	  "observer": false,                    // true: probes and logs only, no load (--observe-only)
//	  "start_at": "2026-...Z",              // the instant every segment waited for (--start-at)
//	  "scenario_digest": "sha256:...",      // of the scenario as run (secrets masked) and the whole load
//	  "whole_load": LOAD                    // the load facts of every segment together
//	}
//
// A segment's own "load" in meta.json is its share.
type Segment struct {
	Index     int        `json:"index"`
	Count     int        `json:"count"`
	Observer  bool       `json:"observer,omitempty"`
	StartAt   time.Time  `json:"start_at,omitzero"`
	Digest    string     `json:"scenario_digest"`
	WholeLoad *LoadFacts `json:"whole_load,omitempty"`
}

// Segments is meta.json's "segments" of a merged run directory:
//
//	{
//	  "count": 3,                 // the segments the load was split into
//	  "merged": [0, 1, 2],        // those whose directories were merged (finished or not)
//	  "missing": [],              // those no directory was given for
//	  "partial": [2],             // merged, but did not finish (interrupted or killed)
//	  "observer": true,           // a separate observer's directory was merged
//	  "start_at": "2026-...Z",
//	  "scenario_digest": "sha256:...",
//	  "dirs": ["/results/seg-0", ...]  // the directories merged, in segment order
//	}
type Segments struct {
	Count    int       `json:"count"`
	Merged   []int     `json:"merged"`
	Missing  []int     `json:"missing"`
	Partial  []int     `json:"partial"`
	Observer bool      `json:"observer,omitempty"`
	StartAt  time.Time `json:"start_at,omitzero"`
	Digest   string    `json:"scenario_digest"`
	Dirs     []string  `json:"dirs"`
}

// RequestsMode says which requests a run writes to requests.csv. The zero
// value writes every one.
type RequestsMode struct {
	// Off writes no requests.csv.
	Off bool
	// Sample, when above 0 and below 1, keeps each request with this
	// probability; 0 keeps every one.
	Sample float64
}

// ParseRequestsMode parses "all", "off" or "sample:P" where P is a
// fraction (0.01) or a percentage (1%) above 0 and at most 1; "" is "all".
func ParseRequestsMode(s string) (RequestsMode, error) {
	switch t := strings.TrimSpace(s); {
	case t == "" || t == "all":
		return RequestsMode{}, nil
	case t == "off":
		return RequestsMode{Off: true}, nil
	case strings.HasPrefix(t, "sample:"):
		v := strings.TrimSpace(strings.TrimPrefix(t, "sample:"))
		scale := 1.0
		if p, ok := strings.CutSuffix(v, "%"); ok {
			v, scale = p, 100
		}
		p, err := strconv.ParseFloat(v, 64)
		p /= scale
		if err != nil || !(p > 0 && p <= 1) {
			return RequestsMode{}, fmt.Errorf("requests.csv %q: the sample is a share above 0 and at most 1, e.g. sample:0.01 or sample:1%%", s)
		}
		if p == 1 {
			return RequestsMode{}, nil
		}
		return RequestsMode{Sample: p}, nil
	default:
		return RequestsMode{}, fmt.Errorf("requests.csv %q: want all, off or sample:P (e.g. sample:0.01)", s)
	}
}

// String returns the mode as ParseRequestsMode reads it and meta.json
// records it.
func (m RequestsMode) String() string {
	switch {
	case m.Off:
		return "off"
	case m.Sample > 0 && m.Sample < 1:
		return "sample:" + strconv.FormatFloat(m.Sample, 'g', -1, 64)
	default:
		return "all"
	}
}

// All reports whether every request is written.
func (m RequestsMode) All() bool { return !m.Off && !(m.Sample > 0 && m.Sample < 1) }

// RequestsMode returns the mode meta.json records.
func (m *Meta) RequestsMode() (RequestsMode, error) {
	return ParseRequestsMode(m.RequestsCSV)
}

// LoadFacts are the facts of the load the diagnosis reasons with.
type LoadFacts struct {
	Model       string  `json:"model"`
	Users       int     `json:"users"`
	SpawnRate   float64 `json:"spawn_rate,omitempty"`
	ArrivalRate float64 `json:"arrival_rate,omitempty"`
	Duration    string  `json:"duration"`
	ThinkMin    string  `json:"think_min,omitempty"`
	ThinkMax    string  `json:"think_max,omitempty"`
	Accounts    int     `json:"accounts"`
	Assignment  string  `json:"assignment,omitempty"`
	SourceIPs   int     `json:"source_ips"`
	// LoginEndpoints names the steps that submit a login (a form with a
	// password field, or a not_login_page check).
	LoginEndpoints []string `json:"login_endpoints,omitempty"`
}

// LogRef is a log tailed during the run.
type LogRef struct {
	Name string `json:"name"`
	Path string `json:"path"`
}

// WriteMeta writes meta.json atomically.
func WriteMeta(dir string, m *Meta) error { return WriteJSON(filepath.Join(dir, MetaFile), m) }

// ReadMeta reads meta.json. An error names the file and, for a damaged
// one, the line and column.
func ReadMeta(dir string) (*Meta, error) {
	var m Meta
	path := filepath.Join(dir, MetaFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, fmt.Errorf("%s is empty: the run was stopped before it was written (stampede writes it first, then rewrites it at the end)", path)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, jsonError(path, b, err)
	}
	return &m, nil
}

// jsonError places a JSON decoding error of data, read from path, at its
// line and column: "meta.json: line 3, column 14: unexpected end of JSON
// input".
func jsonError(path string, data []byte, err error) error {
	off := int64(-1)
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off = te.Offset
	case errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "unexpected end of JSON input"):
		off = int64(len(data))
	}
	if off < 0 || off > int64(len(data)) {
		return fmt.Errorf("%s: %w", path, err)
	}
	line := 1 + bytes.Count(data[:off], []byte("\n"))
	col := 1 + int(off) - (bytes.LastIndexByte(data[:off], '\n') + 1)
	if te != nil {
		// In the file's words, not Go's.
		what := "the file"
		if te.Field != "" {
			what = te.Field
		}
		return fmt.Errorf("%s: line %d, column %d: %s: want %s, got %s", path, line, col, what, jsonKind(te.Type), te.Value)
	}
	return fmt.Errorf("%s: line %d, column %d: %w", path, line, col, err)
}

// jsonKind names what a Go type is written as in JSON.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return "a number"
	}
	return t.String()
}

// WriteJSON writes v as indented JSON to path through a temporary file and
// a rename, so a reader never sees half a file.
func WriteJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(path, append(b, '\n'))
}

// WriteFileAtomic writes data to path through a temporary file and a rename.
func WriteFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Appender is an append-only file flushed on demand and by its owner's
// ticker. It is safe for concurrent use.
type Appender struct {
	mu sync.Mutex
	f  *os.File
	w  *bufio.Writer
}

// NewAppender creates (or truncates) path and writes header as its first line
// when header is not empty.
func NewAppender(path, header string) (*Appender, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	a := &Appender{f: f, w: bufio.NewWriterSize(f, 256<<10)}
	if header != "" {
		a.w.WriteString(header + "\n")
	}
	return a, a.Flush()
}

// Write appends b (one or more whole lines).
func (a *Appender) Write(b []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.w.Write(b)
}

// Flush writes buffered lines to the file.
func (a *Appender) Flush() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.w.Flush()
}

// Close flushes and closes the file.
func (a *Appender) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	err := a.w.Flush()
	if cerr := a.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// RequestWriter appends results to requests.csv. It is used by one
// goroutine (the recorder); Flush may be called from another.
type RequestWriter struct {
	// Secrets masks each failure reason before it is written (see package
	// secret); nil masks by pattern only.
	Secrets *secret.Masker

	a   *Appender
	buf []byte
	// The last reason and its masked form: a failing endpoint repeats its
	// reason, which is then masked once.
	reason, masked string
}

// NewRequestWriter creates requests.csv in dir.
func NewRequestWriter(dir string) (*RequestWriter, error) {
	a, err := NewAppender(filepath.Join(dir, RequestsFile), RequestsHeader)
	if err != nil {
		return nil, err
	}
	return &RequestWriter{a: a, buf: make([]byte, 0, 256)}, nil
}

// Write appends one result, its reason masked.
func (w *RequestWriter) Write(r *stampede.Result) error {
	if r.Reason != "" {
		if r.Reason != w.reason {
			w.reason, w.masked = r.Reason, w.Secrets.Mask(r.Reason)
		}
		if w.masked != r.Reason {
			m := *r
			m.Reason = w.masked
			r = &m
		}
	}
	w.buf = AppendResult(w.buf[:0], r)
	_, err := w.a.Write(w.buf)
	return err
}

// Flush makes every written result readable in the file.
func (w *RequestWriter) Flush() error { return w.a.Flush() }

// Close flushes and closes requests.csv.
func (w *RequestWriter) Close() error { return w.a.Close() }

// AppendResult appends r as one requests.csv line (with its newline).
func AppendResult(b []byte, r *stampede.Result) []byte {
	b = strconv.AppendInt(b, r.Start.UnixMicro(), 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, int64(r.User), 10)
	b = append(b, ',')
	b = appendField(b, r.Name)
	b = append(b, ',')
	b = appendField(b, r.Method)
	b = append(b, ',')
	b = strconv.AppendInt(b, int64(r.Status), 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, r.Latency.Microseconds(), 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, r.Connect.Microseconds(), 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, r.TTFB.Microseconds(), 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, r.Bytes, 10)
	b = append(b, ',')
	b = append(b, r.Outcome.String()...)
	b = append(b, ',')
	b = appendField(b, r.Reason)
	b = append(b, ',')
	if r.Relogin {
		b = append(b, '1')
	}
	return append(b, '\n')
}

// appendField writes s as a CSV field, quoted only when it must be.
func appendField(b []byte, s string) []byte {
	if !strings.ContainsAny(s, ",\"\r\n") && (s == "" || (s[0] != ' ' && s[0] != '\t')) {
		return append(b, s...)
	}
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' {
			b = append(b, '"')
		}
		b = append(b, s[i])
	}
	return append(b, '"')
}

// ReadRequests streams requests.csv of dir to fn, in file order. A torn last
// line (a run killed mid-write) is skipped; a malformed line elsewhere is an
// error naming its line. Reasons are masked by pattern (package secret), as
// a run writes them: a run directory written otherwise (by an older
// version, or put together by hand) cannot bring a secret into a report.
func ReadRequests(dir string, fn func(*stampede.Result) error) error {
	path := filepath.Join(dir, RequestsFile)
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return DecodeRequests(f, path, fn)
}

// ReadRequestsByEnd streams requests.csv of dir to fn in completion order
// (by End, ties in file order): the order the recorder wrote them in, put
// right where results reached it out of order (see EndOrder; slack 0 is
// DefaultSlack).
func ReadRequestsByEnd(dir string, slack time.Duration, fn func(*stampede.Result) error) error {
	o := EndOrder{Slack: slack}
	if err := ReadRequests(dir, func(r *stampede.Result) error { return o.Push(r, fn) }); err != nil {
		return err
	}
	return o.Flush(fn)
}

// DecodeRequests reads requests.csv text from r; name is used in errors.
func DecodeRequests(r io.Reader, name string, fn func(*stampede.Result) error) error {
	rd := NewRequestReader(r, name, 1<<20)
	var res stampede.Result
	for {
		err := rd.Next(&res)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(&res); err != nil {
			return err
		}
	}
}

// RequestReader reads requests.csv one result at a time, for a caller that
// pulls from several files at once (a merge).
type RequestReader struct {
	br     *bufio.Reader
	name   string
	closer io.Closer
	line   int
	cols   int
	names  map[string]string // interning: endpoint names repeat
	// reasons holds each reason read and its masked form: a failing
	// endpoint repeats its reason, which is then masked once.
	reasons map[string]string
}

// OpenRequests opens requests.csv of dir for reading, through a buffer of
// size bytes (0: 1 MiB). Close it when done.
func OpenRequests(dir string, size int) (*RequestReader, error) {
	path := filepath.Join(dir, RequestsFile)
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	rd := NewRequestReader(f, path, size)
	rd.closer = f
	return rd, nil
}

// NewRequestReader reads requests.csv text from r through a buffer of size
// bytes (0: 1 MiB); name is used in errors.
func NewRequestReader(r io.Reader, name string, size int) *RequestReader {
	if size <= 0 {
		size = 1 << 20
	}
	return &RequestReader{br: bufio.NewReaderSize(r, size), name: name, cols: 12, names: map[string]string{}, reasons: map[string]string{}}
}

// Next reads the next result into res. It returns io.EOF after the last
// one; a torn last line (a run killed mid-write) is the end too. A
// malformed line is an error naming the file and the line. The strings of
// res stay valid after the next call.
func (rd *RequestReader) Next(res *stampede.Result) error {
	for {
		raw, err := rd.br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// A line longer than the buffer: copy what was read before
			// reading on overwrites the buffer.
			head := append([]byte(nil), raw...)
			var more []byte
			more, err = rd.br.ReadBytes('\n')
			raw = append(head, more...)
		}
		if len(raw) == 0 && err != nil {
			if err == io.EOF {
				return io.EOF
			}
			return fmt.Errorf("%s: %w", rd.name, err)
		}
		rd.line++
		if err == io.EOF {
			return io.EOF // torn last line: the run was killed mid-write
		}
		if err != nil {
			return fmt.Errorf("%s:%d: %w", rd.name, rd.line, err)
		}
		raw = bytes.TrimRight(raw, "\r\n")
		if rd.line == 1 {
			switch string(raw) {
			case RequestsHeader:
			case requestsHeader11:
				rd.cols = 11
			default:
				return fmt.Errorf("%s:1: header %q is not %q", rd.name, raw, RequestsHeader)
			}
			continue
		}
		if len(raw) == 0 {
			continue
		}
		if err := parseResult(raw, rd.cols, res, rd.intern, rd.reason); err != nil {
			return fmt.Errorf("%s:%d: %w", rd.name, rd.line, err)
		}
		return nil
	}
}

// Line is the line of the file the last result came from (the header is
// line 1).
func (rd *RequestReader) Line() int { return rd.line }

// Close closes the file OpenRequests opened.
func (rd *RequestReader) Close() error {
	if rd.closer == nil {
		return nil
	}
	return rd.closer.Close()
}

func (rd *RequestReader) intern(b []byte) string {
	if s, ok := rd.names[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(rd.names) < 1<<16 {
		rd.names[s] = s
	}
	return s
}

// reason masks a reason read by pattern (package secret), as a run writes
// them.
func (rd *RequestReader) reason(b []byte) string {
	if s, ok := rd.reasons[string(b)]; ok {
		return s
	}
	s := secret.Mask(string(b))
	if len(rd.reasons) < 1<<16 {
		rd.reasons[string(b)] = s
	}
	return s
}

// parseResult reads one line of cols fields (12, or 11 before the relogin
// column).
func parseResult(raw []byte, cols int, r *stampede.Result, intern, reason func([]byte) string) error {
	var fields [12][]byte
	n := 0
	if bytes.IndexByte(raw, '"') >= 0 {
		rd := csv.NewReader(bytes.NewReader(raw))
		rd.FieldsPerRecord = -1
		rec, err := rd.Read()
		if err != nil {
			return err
		}
		if len(rec) != cols {
			return fmt.Errorf("%d fields, want %d", len(rec), cols)
		}
		for i, s := range rec {
			fields[i] = []byte(s)
		}
		n = cols
	} else {
		for len(raw) > 0 || n < cols {
			if n == cols {
				return fmt.Errorf("more than %d fields", cols)
			}
			i := bytes.IndexByte(raw, ',')
			if i < 0 {
				fields[n] = raw
				n++
				break
			}
			fields[n] = raw[:i]
			raw = raw[i+1:]
			n++
		}
	}
	if n != cols {
		return fmt.Errorf("%d fields, want %d", n, cols)
	}
	ints := [7]int64{}
	for i, k := range []int{0, 1, 4, 5, 6, 7, 8} {
		v, err := atoi(fields[k])
		if err != nil {
			return fmt.Errorf("field %d: %w", k+1, err)
		}
		ints[i] = v
	}
	o, ok := stampede.ParseOutcome(string(fields[9]))
	if !ok {
		return fmt.Errorf("outcome %q unknown", fields[9])
	}
	*r = stampede.Result{
		Start:   time.UnixMicro(ints[0]),
		User:    int(ints[1]),
		Name:    intern(fields[2]),
		Method:  intern(fields[3]),
		Status:  int(ints[2]),
		Latency: time.Duration(ints[3]) * time.Microsecond,
		Connect: time.Duration(ints[4]) * time.Microsecond,
		TTFB:    time.Duration(ints[5]) * time.Microsecond,
		Bytes:   ints[6],
		Outcome: o,
		Reason:  reason(fields[10]),
		Relogin: cols == 12 && len(fields[11]) == 1 && fields[11][0] == '1',
	}
	return nil
}

func atoi(b []byte) (int64, error) {
	if len(b) == 0 {
		return 0, errors.New("empty number")
	}
	neg := false
	if b[0] == '-' {
		neg, b = true, b[1:]
	}
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%q is not a number", b)
		}
		v = v*10 + int64(c-'0')
	}
	if neg {
		v = -v
	}
	return v, nil
}

// JSONLWriter appends one JSON value per line (timeline.jsonl, evidence.jsonl).
type JSONLWriter struct{ a *Appender }

// NewJSONLWriter creates path.
func NewJSONLWriter(path string) (*JSONLWriter, error) {
	a, err := NewAppender(path, "")
	if err != nil {
		return nil, err
	}
	return &JSONLWriter{a: a}, nil
}

// Write appends v as one line. It is safe for concurrent use.
func (w *JSONLWriter) Write(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.a.Write(append(b, '\n'))
	return err
}

// Flush makes written lines readable.
func (w *JSONLWriter) Flush() error { return w.a.Flush() }

// Close flushes and closes.
func (w *JSONLWriter) Close() error { return w.a.Close() }

// ReadTimeline reads timeline.jsonl of dir (missing file: no samples),
// masking the samples' texts by pattern as ReadRequests does.
func ReadTimeline(dir string) ([]stampede.Sample, error) {
	var out []stampede.Sample
	var none *secret.Masker
	err := readJSONL(filepath.Join(dir, TimelineFile), func(b []byte) error {
		var s stampede.Sample
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		none.Sample(&s)
		out = append(out, s)
		return nil
	})
	return out, err
}

// ReadEvidence reads evidence.jsonl of dir (missing file: no evidence),
// masking the events' texts by pattern as ReadRequests does.
func ReadEvidence(dir string) ([]stampede.Evidence, error) {
	var out []stampede.Evidence
	var none *secret.Masker
	err := readJSONL(filepath.Join(dir, EvidenceFile), func(b []byte) error {
		var e stampede.Evidence
		if err := json.Unmarshal(b, &e); err != nil {
			return err
		}
		none.Evidence(&e)
		out = append(out, e)
		return nil
	})
	return out, err
}

func readJSONL(path string, fn func([]byte) error) error {
	r, err := OpenJSONL(path, 1<<20)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer r.Close()
	for {
		b, err := r.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if perr := fn(b); perr != nil {
			return fmt.Errorf("%s:%d: %w", path, r.Line(), perr)
		}
	}
}

// JSONLReader reads a .jsonl file (timeline.jsonl, evidence.jsonl) one line
// at a time.
type JSONLReader struct {
	f    *os.File
	br   *bufio.Reader
	line int
}

// OpenJSONL opens path for reading through a buffer of size bytes (0: 1
// MiB). Close it when done.
func OpenJSONL(path string, size int) (*JSONLReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	if size <= 0 {
		size = 1 << 20
	}
	return &JSONLReader{f: f, br: bufio.NewReaderSize(f, size)}, nil
}

// Next returns the next line that is not blank, without its newline, valid
// until the next call; io.EOF after the last. A torn last line (no
// newline: a run killed mid-write) is the end.
func (r *JSONLReader) Next() ([]byte, error) {
	for {
		b, err := r.br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			head := append([]byte(nil), b...) // before reading on overwrites it
			var more []byte
			more, err = r.br.ReadBytes('\n')
			b = append(head, more...)
		}
		if err == io.EOF {
			return nil, io.EOF
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", r.f.Name(), err)
		}
		r.line++
		if b = bytes.TrimSpace(b); len(b) > 0 {
			return b, nil
		}
	}
}

// Line is the line number of the last line Next returned.
func (r *JSONLReader) Line() int { return r.line }

// Close closes the file.
func (r *JSONLReader) Close() error { return r.f.Close() }
