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

// DecodeRequests reads requests.csv text from r; name is used in errors.
func DecodeRequests(r io.Reader, name string, fn func(*stampede.Result) error) error {
	br := bufio.NewReaderSize(r, 1<<20)
	names := map[string]string{} // interning: endpoint names and reasons repeat
	intern := func(b []byte) string {
		if s, ok := names[string(b)]; ok {
			return s
		}
		s := string(b)
		if len(names) < 1<<16 {
			names[s] = s
		}
		return s
	}
	reasons := map[string]string{} // masked once each
	reason := func(b []byte) string {
		if s, ok := reasons[string(b)]; ok {
			return s
		}
		s := secret.Mask(string(b))
		if len(reasons) < 1<<16 {
			reasons[string(b)] = s
		}
		return s
	}
	line := 0
	cols := 12
	var res stampede.Result
	for {
		raw, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			var more []byte
			more, err = br.ReadBytes('\n')
			raw = append(append([]byte(nil), raw...), more...)
		}
		if len(raw) == 0 && err != nil {
			if err == io.EOF {
				return nil
			}
			return fmt.Errorf("%s: %w", name, err)
		}
		line++
		if err == io.EOF {
			return nil // torn last line: the run was killed mid-write
		}
		if err != nil {
			return fmt.Errorf("%s:%d: %w", name, line, err)
		}
		raw = bytes.TrimRight(raw, "\r\n")
		if line == 1 {
			switch string(raw) {
			case RequestsHeader:
			case requestsHeader11:
				cols = 11
			default:
				return fmt.Errorf("%s:1: header %q is not %q", name, raw, RequestsHeader)
			}
			continue
		}
		if len(raw) == 0 {
			continue
		}
		if err := parseResult(raw, cols, &res, intern, reason); err != nil {
			return fmt.Errorf("%s:%d: %w", name, line, err)
		}
		if err := fn(&res); err != nil {
			return err
		}
	}
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
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<20)
	line := 0
	for {
		b, err := br.ReadBytes('\n')
		if len(b) > 0 && err == nil {
			line++
			if len(bytes.TrimSpace(b)) > 0 {
				if perr := fn(b); perr != nil {
					return fmt.Errorf("%s:%d: %w", path, line, perr)
				}
			}
		}
		if err == io.EOF {
			return nil // a torn last line is skipped
		}
		if err != nil {
			return err
		}
	}
}
