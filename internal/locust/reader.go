package locust

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/stampede-load/stampede/internal/metrics"
)

// Run is what a Locust run (or stampede's) left in its CSV files.
type Run struct {
	// Prefix is the --csv PREFIX the files were read from.
	Prefix string
	// Stats is PREFIX_stats.csv.
	Stats *Stats
	// History is PREFIX_stats_history.csv; nil when the file is absent.
	History *History
	// Failures is PREFIX_failures.csv; empty when the file is absent.
	Failures []Failure
	// Exceptions is PREFIX_exceptions.csv; empty when the file is absent.
	Exceptions []Exception
}

// Stats is the content of PREFIX_stats.csv.
type Stats struct {
	// Quantiles are the percentile columns of the header, as fractions
	// (0.5 for "50%"), in order.
	Quantiles []float64
	// Rows are the data rows in file order, the Aggregated row included.
	Rows []StatsRow
}

// StatsRow is one row of PREFIX_stats.csv. Times are in milliseconds.
type StatsRow struct {
	Method, Name              string
	Requests, Failures        int64
	Median, Average, Min, Max float64
	AvgContentSize            float64
	RPS, FailuresPerSec       float64
	// Percentiles are the latencies at Stats.Quantiles; NaN where the file
	// says N/A (an entry without requests).
	Percentiles []float64
}

// Aggregated returns the Aggregated row, or nil if the file has none.
func (s *Stats) Aggregated() *StatsRow {
	for i := range s.Rows {
		if s.Rows[i].Name == metrics.AggregatedName && s.Rows[i].Method == "" {
			return &s.Rows[i]
		}
	}
	return nil
}

// History is the content of PREFIX_stats_history.csv.
type History struct {
	// Quantiles are the percentile columns of the header, as fractions.
	Quantiles []float64
	// Rows are the data rows in file order.
	Rows []HistoryRow
}

// HistoryRow is one row of PREFIX_stats_history.csv. Times are in
// milliseconds; the rates and percentiles cover Locust's "current" window
// (about 10 s), the Total columns the whole run so far.
type HistoryRow struct {
	Time                         time.Time
	Users                        int
	Method, Name                 string
	RPS, FailuresPerSec          float64
	Percentiles                  []float64 // NaN for N/A
	TotalRequests, TotalFailures int64
	TotalMedian, TotalAverage    float64
	TotalMin, TotalMax           float64
	TotalAvgContentSize          float64
}

// Failure is one row of PREFIX_failures.csv.
type Failure struct {
	Method, Name string
	// Error is the error as Locust wrote it: CatchResponseError('HTTP 500').
	Error       string
	Occurrences int64
	// FirstSeen and LastSeen come from the optional columns of newer Locust
	// versions; zero when absent.
	FirstSeen, LastSeen time.Time
}

var wrapped = regexp.MustCompile(`^[A-Za-z_][\w.]*\((.*)\)$`)

// Reason returns the error's message: the string inside
// CatchResponseError('...') or any other ExceptionName('...'), Error as
// is otherwise.
func (f *Failure) Reason() string {
	if m := wrapped.FindStringSubmatch(f.Error); m != nil {
		if s, ok := unrepr(m[1]); ok {
			return s
		}
	}
	return f.Error
}

// Exception is one row of PREFIX_exceptions.csv.
type Exception struct {
	Count     int64
	Message   string
	Traceback string
	Nodes     string
}

// Read reads the Locust files of prefix: PREFIX_stats.csv must exist, the
// others may be absent.
func Read(prefix string) (*Run, error) {
	run := &Run{Prefix: prefix}
	err := readFile(prefix+StatsSuffix, false, func(r io.Reader, name string) (err error) {
		run.Stats, err = ReadStats(r, name)
		return err
	})
	if err == nil {
		err = readFile(prefix+HistorySuffix, true, func(r io.Reader, name string) (err error) {
			run.History, err = ReadHistory(r, name)
			return err
		})
	}
	if err == nil {
		err = readFile(prefix+FailuresSuffix, true, func(r io.Reader, name string) (err error) {
			run.Failures, err = ReadFailures(r, name)
			return err
		})
	}
	if err == nil {
		err = readFile(prefix+ExceptionsSuffix, true, func(r io.Reader, name string) (err error) {
			run.Exceptions, err = ReadExceptions(r, name)
			return err
		})
	}
	if err != nil {
		return nil, err
	}
	return run, nil
}

// readFile reads the file at path with read. A last line cut short (a
// run killed while Locust wrote, the history being appended to) is left
// out: the file is read as far as it is whole.
func readFile(path string, optional bool, read func(io.Reader, string) error) error {
	data, err := os.ReadFile(path)
	if optional && errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("locust: %w", err)
	}
	return read(bytes.NewReader(wholeLines(data)), path)
}

// wholeLines returns data without a torn last line: text after the last
// newline that is not a record as wide as the header. A last line that is
// whole but lacks its newline is kept.
func wholeLines(data []byte) []byte {
	nl := bytes.LastIndexByte(data, '\n')
	if len(data) == 0 || nl == len(data)-1 || nl < 0 {
		return data
	}
	head, _, _ := bytes.Cut(data, []byte("\n"))
	width := func(b []byte) int {
		r := csv.NewReader(bytes.NewReader(b))
		r.FieldsPerRecord = -1
		rec, err := r.Read()
		if err != nil {
			return -1
		}
		if _, err := r.Read(); !errors.Is(err, io.EOF) {
			return -1
		}
		return len(rec)
	}
	if w := width(data[nl+1:]); w < 0 || w != width(head) {
		return data[:nl+1]
	}
	return data
}

// table reads a CSV file with a header row, locating columns by name.
type table struct {
	file string
	r    *csv.Reader
	cols map[string]int // lower-cased header name → index
	head []string
	rec  []string
}

func newTable(r io.Reader, file string) (*table, error) {
	t := &table{file: file, r: csv.NewReader(r), cols: map[string]int{}}
	t.r.FieldsPerRecord = -1 // checked here, with a better message
	t.r.ReuseRecord = true
	head, err := t.r.Read()
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("locust: %s: empty file, want a header row", file)
	}
	if err != nil {
		return nil, t.csvError(err)
	}
	t.head = append([]string(nil), head...)
	if len(t.head) > 0 {
		t.head[0] = strings.TrimPrefix(t.head[0], "\ufeff") // a BOM from a spreadsheet
	}
	for i, h := range t.head {
		t.cols[strings.ToLower(strings.TrimSpace(h))] = i
	}
	return t, nil
}

func (t *table) csvError(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return fmt.Errorf("locust: %s: line %d, column %d: %w", t.file, pe.Line, pe.Column, pe.Err)
	}
	return fmt.Errorf("locust: %s: %w", t.file, err)
}

// col returns the index of the first of names found in the header.
func (t *table) col(names ...string) (int, error) {
	for _, n := range names {
		if i, ok := t.cols[strings.ToLower(n)]; ok {
			return i, nil
		}
	}
	return 0, fmt.Errorf("locust: %s: line 1: no column %q in the header %q: is it a Locust CSV of that kind? stampede reads those of Locust 1.0 and later",
		t.file, names[0], clipHeader(t.head))
}

// clipHeader lists a header's columns for an error message, shortened.
func clipHeader(head []string) string {
	s := strings.Join(head, ",")
	if len(s) > 120 {
		s = strings.ToValidUTF8(s[:120], "") + "…"
	}
	return s
}

// optCol is col for an optional column: -1 when absent.
func (t *table) optCol(names ...string) int {
	i, err := t.col(names...)
	if err != nil {
		return -1
	}
	return i
}

// quantiles returns the indexes and fractions of the "NN%" columns.
func (t *table) quantiles() (idx []int, qs []float64) {
	for i, h := range t.head {
		if p, ok := strings.CutSuffix(strings.TrimSpace(h), "%"); ok {
			// "99.9e-2" parses to the float nearest 0.999, as Locust's list
			// holds it; 99.9/100 would not be.
			if v, err := strconv.ParseFloat(strings.TrimSpace(p)+"e-2", 64); err == nil && v >= 0 && v <= 1 {
				idx = append(idx, i)
				qs = append(qs, v)
			}
		}
	}
	return idx, qs
}

// next reads a record; it returns false at the end of the file.
func (t *table) next() (bool, error) {
	rec, err := t.r.Read()
	if errors.Is(err, io.EOF) {
		return false, nil
	}
	if err != nil {
		return false, t.csvError(err)
	}
	if len(rec) != len(t.head) {
		line, _ := t.r.FieldPos(0)
		return false, fmt.Errorf("locust: %s: line %d: %d fields, want %d as in the header", t.file, line, len(rec), len(t.head))
	}
	t.rec = rec
	return true, nil
}

func (t *table) fieldError(i int, format string, args ...any) error {
	line, column := t.r.FieldPos(i)
	return fmt.Errorf("locust: %s: line %d, column %d (%s): %s", t.file, line, column, t.head[i], fmt.Sprintf(format, args...))
}

func (t *table) str(i int) string {
	if i < 0 {
		return ""
	}
	return t.rec[i]
}

func (t *table) int(i int) (int64, error) {
	s := strings.TrimSpace(t.rec[i])
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		// Python may write a count as a float ("12.0").
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
			return 0, t.fieldError(i, "invalid integer %q", t.rec[i])
		}
		v = int64(f)
	}
	return v, nil
}

func (t *table) float(i int, naOK bool) (float64, error) {
	s := strings.TrimSpace(t.rec[i])
	if naOK && s == "N/A" {
		return math.NaN(), nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || (!naOK && math.IsNaN(v)) {
		return 0, t.fieldError(i, "invalid number %q", t.rec[i])
	}
	return v, nil
}

// scanner collects typed fields, keeping the first error.
type scanner struct {
	t   *table
	err error
}

func (s *scanner) int(p *int64, i int) {
	if s.err == nil {
		*p, s.err = s.t.int(i)
	}
}

func (s *scanner) float(p *float64, i int) {
	if s.err == nil {
		*p, s.err = s.t.float(i, false)
	}
}

func (s *scanner) percentiles(idx []int) []float64 {
	out := make([]float64, len(idx))
	for k, i := range idx {
		if s.err == nil {
			out[k], s.err = s.t.float(i, true)
		}
	}
	return out
}

// ReadStats reads a PREFIX_stats.csv from r; file names it in errors.
func ReadStats(r io.Reader, file string) (*Stats, error) {
	t, err := newTable(r, file)
	if err != nil {
		return nil, err
	}
	var c [11]int
	for k, names := range [][]string{
		{"Type", "Method"}, {"Name"}, {"Request Count", "# requests"}, {"Failure Count", "# failures"},
		{"Median Response Time"}, {"Average Response Time"}, {"Min Response Time"}, {"Max Response Time"},
		{"Average Content Size"}, {"Requests/s"}, {"Failures/s", "Requests Failed/s"},
	} {
		if c[k], err = t.col(names...); err != nil {
			return nil, err
		}
	}
	idx, qs := t.quantiles()
	st := &Stats{Quantiles: qs}
	for {
		ok, err := t.next()
		if err != nil {
			return nil, err
		}
		if !ok {
			return st, nil
		}
		row := StatsRow{Method: t.str(c[0]), Name: t.str(c[1])}
		s := scanner{t: t}
		s.int(&row.Requests, c[2])
		s.int(&row.Failures, c[3])
		s.float(&row.Median, c[4])
		s.float(&row.Average, c[5])
		s.float(&row.Min, c[6])
		s.float(&row.Max, c[7])
		s.float(&row.AvgContentSize, c[8])
		s.float(&row.RPS, c[9])
		s.float(&row.FailuresPerSec, c[10])
		row.Percentiles = s.percentiles(idx)
		if s.err != nil {
			return nil, s.err
		}
		st.Rows = append(st.Rows, row)
	}
}

// ReadHistory reads a PREFIX_stats_history.csv from r.
func ReadHistory(r io.Reader, file string) (*History, error) {
	t, err := newTable(r, file)
	if err != nil {
		return nil, err
	}
	var c [13]int
	for k, name := range []string{
		"Timestamp", "User Count", "Type", "Name", "Requests/s", "Failures/s",
		"Total Request Count", "Total Failure Count", "Total Median Response Time",
		"Total Average Response Time", "Total Min Response Time", "Total Max Response Time",
		"Total Average Content Size",
	} {
		if c[k], err = t.col(name); err != nil {
			return nil, err
		}
	}
	idx, qs := t.quantiles()
	h := &History{Quantiles: qs}
	for {
		ok, err := t.next()
		if err != nil {
			return nil, err
		}
		if !ok {
			return h, nil
		}
		row := HistoryRow{Method: t.str(c[2]), Name: t.str(c[3])}
		s := scanner{t: t}
		var ts, users int64
		s.int(&ts, c[0])
		s.int(&users, c[1])
		s.float(&row.RPS, c[4])
		s.float(&row.FailuresPerSec, c[5])
		row.Percentiles = s.percentiles(idx)
		s.int(&row.TotalRequests, c[6])
		s.int(&row.TotalFailures, c[7])
		s.float(&row.TotalMedian, c[8])
		s.float(&row.TotalAverage, c[9])
		s.float(&row.TotalMin, c[10])
		s.float(&row.TotalMax, c[11])
		s.float(&row.TotalAvgContentSize, c[12])
		if s.err != nil {
			return nil, s.err
		}
		if users < 0 || users > math.MaxInt32 {
			return nil, t.fieldError(c[1], "invalid user count %d", users)
		}
		row.Time, row.Users = time.Unix(ts, 0).UTC(), int(users)
		h.Rows = append(h.Rows, row)
	}
}

// ReadFailures reads a PREFIX_failures.csv from r, with or without the
// First Seen and Last Seen columns.
func ReadFailures(r io.Reader, file string) ([]Failure, error) {
	t, err := newTable(r, file)
	if err != nil {
		return nil, err
	}
	var c [4]int
	for k, name := range []string{"Method", "Name", "Error", "Occurrences"} {
		if c[k], err = t.col(name); err != nil {
			return nil, err
		}
	}
	first, last := t.optCol("First Seen"), t.optCol("Last Seen")
	var out []Failure
	for {
		ok, err := t.next()
		if err != nil {
			return nil, err
		}
		if !ok {
			return out, nil
		}
		f := Failure{Method: t.str(c[0]), Name: t.str(c[1]), Error: t.str(c[2])}
		if f.Occurrences, err = t.int(c[3]); err != nil {
			return nil, err
		}
		if f.FirstSeen, err = t.time(first); err != nil {
			return nil, err
		}
		if f.LastSeen, err = t.time(last); err != nil {
			return nil, err
		}
		out = append(out, f)
	}
}

// time reads a timestamp: Unix seconds (with a fraction) or an ISO date;
// an absent column or an empty field is the zero time.
func (t *table) time(i int) (time.Time, error) {
	if i < 0 || strings.TrimSpace(t.rec[i]) == "" {
		return time.Time{}, nil
	}
	s := strings.TrimSpace(t.rec[i])
	if v, err := strconv.ParseFloat(s, 64); err == nil && !math.IsNaN(v) && !math.IsInf(v, 0) && math.Abs(v) < 1e11 {
		sec, frac := math.Modf(v)
		return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999"} {
		if v, err := time.Parse(layout, s); err == nil {
			return v, nil
		}
	}
	return time.Time{}, t.fieldError(i, "invalid time %q: want Unix seconds or an ISO 8601 date", t.rec[i])
}

// ReadExceptions reads a PREFIX_exceptions.csv from r.
func ReadExceptions(r io.Reader, file string) ([]Exception, error) {
	t, err := newTable(r, file)
	if err != nil {
		return nil, err
	}
	var c [4]int
	for k, name := range []string{"Count", "Message", "Traceback", "Nodes"} {
		if c[k], err = t.col(name); err != nil {
			return nil, err
		}
	}
	var out []Exception
	for {
		ok, err := t.next()
		if err != nil {
			return nil, err
		}
		if !ok {
			return out, nil
		}
		e := Exception{Message: t.str(c[1]), Traceback: t.str(c[2]), Nodes: t.str(c[3])}
		if e.Count, err = t.int(c[0]); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
}
