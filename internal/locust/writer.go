package locust

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/stampede-load/stampede/internal/metrics"
)

// Writer keeps the four Locust files of a run up to date: call Write after
// every metrics.Metrics.Tick, on the same goroutine, and Close at the end.
type Writer struct {
	prefix  string
	history *os.File
	hbuf    *bufio.Writer
	buf     []byte
}

// Create creates PREFIX_stats.csv, PREFIX_stats_history.csv,
// PREFIX_failures.csv and PREFIX_exceptions.csv, each holding its header.
func Create(prefix string) (*Writer, error) {
	w := &Writer{prefix: prefix}
	for _, f := range []struct{ suffix, header string }{
		{StatsSuffix, StatsHeader},
		{FailuresSuffix, FailuresHeader},
		{ExceptionsSuffix, ExceptionsHeader},
	} {
		if err := metrics.WriteFileAtomic(prefix+f.suffix, []byte(f.header+"\r\n")); err != nil {
			return nil, fmt.Errorf("locust: %w", err)
		}
	}
	h, err := os.Create(prefix + HistorySuffix)
	if err != nil {
		return nil, fmt.Errorf("locust: %w", err)
	}
	w.history, w.hbuf = h, bufio.NewWriter(h)
	if _, err := w.hbuf.WriteString(HistoryHeader + "\r\n"); err != nil {
		h.Close()
		return nil, fmt.Errorf("locust: %w", err)
	}
	if err := w.hbuf.Flush(); err != nil {
		h.Close()
		return nil, fmt.Errorf("locust: %w", err)
	}
	return w, nil
}

// Write appends the rows of sec to the history (nil appends none), flushes
// it, and rewrites the stats and failures files atomically (a temporary
// file renamed over the old one), from m as it is now: call it right after
// the Tick that made sec.
func (w *Writer) Write(m *metrics.Metrics, sec *metrics.Second) error {
	if sec != nil {
		w.buf = AppendHistory(w.buf[:0], m, sec)
		if _, err := w.hbuf.Write(w.buf); err != nil {
			return fmt.Errorf("locust: %w", err)
		}
		if err := w.hbuf.Flush(); err != nil {
			return fmt.Errorf("locust: %w", err)
		}
	}
	w.buf = AppendStats(append(w.buf[:0], StatsHeader+"\r\n"...), m)
	if err := metrics.WriteFileAtomic(w.prefix+StatsSuffix, w.buf); err != nil {
		return fmt.Errorf("locust: %w", err)
	}
	w.buf = AppendFailures(append(w.buf[:0], FailuresHeader+"\r\n"...), m)
	if err := metrics.WriteFileAtomic(w.prefix+FailuresSuffix, w.buf); err != nil {
		return fmt.Errorf("locust: %w", err)
	}
	return nil
}

// Close flushes and closes the history file.
func (w *Writer) Close() error {
	err := w.hbuf.Flush()
	if cerr := w.history.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("locust: %w", err)
	}
	return nil
}

// WriteStats writes PREFIX_stats.csv's content, header included, for m.
func WriteStats(out io.Writer, m *metrics.Metrics) error {
	_, err := out.Write(AppendStats([]byte(StatsHeader+"\r\n"), m))
	return err
}

// WriteFailures writes PREFIX_failures.csv's content, header included.
func WriteFailures(out io.Writer, m *metrics.Metrics) error {
	_, err := out.Write(AppendFailures([]byte(FailuresHeader+"\r\n"), m))
	return err
}

// AppendStats appends the data rows of PREFIX_stats.csv to b: one row per
// endpoint, sorted by name then method, then the Aggregated row with an
// empty Type. Columns, as Locust computes them:
//
//	Type, Name             method, endpoint name
//	Request Count          every request, failed or not
//	Failure Count          failed requests
//	Median Response Time   median of the coarse (Locust-rounded) latencies,
//	                       kept between min and max: 17, 360.0 or an exact 374.3256
//	Average Response Time  mean latency, ms, Python float: 341.5001999333451
//	Min/Max Response Time  exact extremes, ms, Python float; 0 without requests
//	Average Content Size   body bytes per request, Python float; 0 without requests
//	Requests/s, Failures/s requests (failures) / (last response - start of the run)
//	50% ... 100%           coarse percentiles, integer ms; N/A without requests
func AppendStats(b []byte, m *metrics.Metrics) []byte {
	var span float64 // Locust: last_request_timestamp - start_time
	if last := m.Total().Last; !last.IsZero() {
		span = last.Sub(m.Start()).Seconds()
	}
	for _, e := range m.Endpoints() {
		b = appendStatsRow(b, e, span)
	}
	return appendStatsRow(b, m.Total(), span)
}

func appendStatsRow(b []byte, e *metrics.Endpoint, span float64) []byte {
	rps, fps := "0.0", "0.0"
	if span > 0 {
		rps = pyFloat(float64(e.Requests) / span)
		fps = pyFloat(float64(e.Failures) / span)
	}
	fields := make([]string, 0, 11+metrics.NumPercentiles)
	fields = append(fields,
		e.Method, e.Name,
		strconv.FormatInt(e.Requests, 10), strconv.FormatInt(e.Failures, 10),
		median(e), average(e), msOrZero(e.Min), msOrZero(e.Max), contentSize(e),
		rps, fps)
	fields = appendPercentiles(fields, e, func(i int) int64 { return e.CoarsePercentile(metrics.Percentiles[i]) })
	return appendRow(b, fields...)
}

// AppendHistory appends to b the rows PREFIX_stats_history.csv gets for one
// second (--csv-full-history): one per endpoint, sorted by name then method,
// then the Aggregated row. Columns:
//
//	Timestamp              Unix seconds of the tick
//	User Count             active users
//	Type, Name             method (empty for Aggregated), endpoint name
//	Requests/s, Failures/s rates over the last 10 s, %f: 12.300000
//	50% ... 100%           coarse percentiles over the last 10 s, integer ms;
//	                       0 when the window is empty, N/A without any request
//	Total ...              the cumulative columns of PREFIX_stats.csv
func AppendHistory(b []byte, m *metrics.Metrics, sec *metrics.Second) []byte {
	ts := strconv.FormatInt(sec.Time.Unix(), 10)
	users := strconv.Itoa(sec.Users)
	row := func(r *metrics.Row, e *metrics.Endpoint) {
		fields := make([]string, 0, 13+metrics.NumPercentiles)
		fields = append(fields, ts, users, r.Method, r.Name,
			fmt.Sprintf("%2f", r.RPS), fmt.Sprintf("%2f", r.FailuresPerSec))
		fields = appendPercentiles(fields, e, func(i int) int64 { return r.Coarse[i] })
		fields = append(fields,
			strconv.FormatInt(e.Requests, 10), strconv.FormatInt(e.Failures, 10),
			median(e), average(e), msOrZero(e.Min), msOrZero(e.Max), contentSize(e))
		b = appendRow(b, fields...)
	}
	for i := range sec.Endpoints {
		r := &sec.Endpoints[i]
		if e := m.Endpoint(r.Method, r.Name); e != nil {
			row(r, e)
		}
	}
	row(&sec.Total, m.Total())
	return b
}

// AppendFailures appends the data rows of PREFIX_failures.csv: Method,
// Name, Error as CatchResponseError('REASON') (Python's repr of the
// reason), Occurrences; sorted by method, name and reason.
func AppendFailures(b []byte, m *metrics.Metrics) []byte {
	for _, f := range m.Failures() {
		b = appendRow(b, f.Method, f.Name, "CatchResponseError("+pyRepr(f.Reason)+")", strconv.FormatInt(f.Occurrences, 10))
	}
	return b
}

func appendPercentiles(fields []string, e *metrics.Endpoint, at func(i int) int64) []string {
	for i := range metrics.NumPercentiles {
		if e.Requests == 0 {
			fields = append(fields, "N/A")
		} else {
			fields = append(fields, strconv.FormatInt(at(i), 10))
		}
	}
	return fields
}

func toMS(d time.Duration) float64 { return float64(d) / 1e6 }

// median is Locust's StatsEntry.median_response_time: the coarse median
// (an int below 100 ms, a float above, as Python's round gives them),
// replaced by the exact max or min when it falls outside them.
func median(e *metrics.Endpoint) string {
	if e.Requests == 0 {
		return "0"
	}
	key := e.CoarseMedian()
	switch k := float64(key); {
	case k > toMS(e.Max):
		return pyFloat(toMS(e.Max))
	case k < toMS(e.Min):
		return pyFloat(toMS(e.Min))
	case key < 100:
		return strconv.FormatInt(key, 10)
	default:
		return pyFloat(k)
	}
}

func average(e *metrics.Endpoint) string {
	if e.Requests == 0 {
		return "0.0"
	}
	return pyFloat(float64(e.LatencySum) / 1e6 / float64(e.Requests))
}

// msOrZero prints Locust's `min_response_time or 0`: the int 0 for none
// (or zero), the float otherwise.
func msOrZero(d time.Duration) string {
	if d <= 0 {
		return "0"
	}
	return pyFloat(toMS(d))
}

func contentSize(e *metrics.Endpoint) string {
	if e.Requests == 0 {
		return "0"
	}
	return pyFloat(float64(e.Bytes) / float64(e.Requests))
}
