// Package locust writes and reads the CSV files of Locust
// (locust --csv PREFIX --csv-full-history): PREFIX_stats.csv,
// PREFIX_stats_history.csv, PREFIX_failures.csv and PREFIX_exceptions.csv,
// with Locust's headers byte for byte, \r\n line ends and, as far as they
// can be matched, Locust's number formats.
//
// Deviations from what Locust 2.x writes:
//
//   - Failures are sorted by method, name and error; Locust sorts them by
//     the SHA-256 of its key, an order that looks random.
//   - The Error column is CatchResponseError('REASON') for every failure,
//     as Locust writes for a response.failure("REASON") under
//     catch_response; Locust would write other exception names for
//     transport errors (ConnectionError(...)).
//   - The history's Requests/s and Failures/s are averages over the last
//     10 seconds closed, computed at each tick. Locust averages over the 10
//     seconds ending 2 seconds before its last request, so its rates lag
//     by 2 s and freeze when requests stop.
//   - The history's percentiles cover the last 10 ticks exactly; Locust
//     picks the nearest cached second to 10 s ago (up to 8 s off when its
//     cache has gaps).
//   - Averages sum whole nanoseconds before dividing; Locust sums float
//     milliseconds, so the last digits of Average Response Time may differ.
//   - A median of exactly 100 ms prints as 100.0 whether it came from
//     rounding 99.5..99.99 ms (Locust: 100) or 100..104.99 ms (100.0).
//   - Min, max and average latencies carry nanoseconds (Go's clock) where
//     Locust's carry what its float clock gives.
//   - The exceptions file has its header only: stampede has no Python
//     exceptions to report.
package locust

import (
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The headers of Locust's CSV files, byte for byte (without the \r\n).
const (
	StatsHeader      = "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%"
	HistoryHeader    = "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%,Total Request Count,Total Failure Count,Total Median Response Time,Total Average Response Time,Total Min Response Time,Total Max Response Time,Total Average Content Size"
	FailuresHeader   = "Method,Name,Error,Occurrences"
	ExceptionsHeader = "Count,Message,Traceback,Nodes"
)

// The file names Locust derives from its --csv PREFIX.
const (
	StatsSuffix      = "_stats.csv"
	HistorySuffix    = "_stats_history.csv"
	FailuresSuffix   = "_failures.csv"
	ExceptionsSuffix = "_exceptions.csv"
)

// DefaultPrefix is the prefix of the Locust files in a run directory:
// RUN_DIR/locust_stats.csv and so on.
const DefaultPrefix = "locust"

// appendRow appends fields as one CSV record the way Python's csv module
// writes it by default (QUOTE_MINIMAL, doubled quotes, \r\n): a field is
// quoted only when it holds a comma, a quote, \r or \n. (Go's encoding/csv
// also quotes a field that starts with a space, which Python does not.)
func appendRow(b []byte, fields ...string) []byte {
	for i, f := range fields {
		if i > 0 {
			b = append(b, ',')
		}
		if !strings.ContainsAny(f, ",\"\r\n") {
			b = append(b, f...)
			continue
		}
		b = append(b, '"')
		b = append(b, strings.ReplaceAll(f, `"`, `""`)...)
		b = append(b, '"')
	}
	return append(b, '\r', '\n')
}

// pyFloat formats f as Python's repr(float) does: the shortest digits that
// read back as f, in fixed notation between 1e-4 and 1e16 (always with a
// decimal point: 360.0), in exponent notation outside (1e-05, 1e+16).
func pyFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	case f == 0:
		if math.Signbit(f) {
			return "-0.0"
		}
		return "0.0"
	}
	if a := math.Abs(f); a < 1e-4 || a >= 1e16 {
		return strconv.FormatFloat(f, 'e', -1, 64) // 1e-05, 1.5e+16: as Python
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.ContainsRune(s, '.') {
		s += ".0"
	}
	return s
}

// pyRepr quotes s as Python's repr(str) does.
func pyRepr(s string) string {
	q := byte('\'')
	if strings.IndexByte(s, '\'') >= 0 && strings.IndexByte(s, '"') < 0 {
		q = '"'
	}
	b := []byte{q}
	for _, r := range s {
		switch {
		case r == '\\':
			b = append(b, `\\`...)
		case r == rune(q):
			b = append(b, '\\', q)
		case r == '\t':
			b = append(b, `\t`...)
		case r == '\n':
			b = append(b, `\n`...)
		case r == '\r':
			b = append(b, `\r`...)
		case r == utf8.RuneError:
			b = append(b, `\ufffd`...) // invalid UTF-8, which Python strings cannot hold
		case r < 0x80 && (r < 0x20 || r == 0x7f), r >= 0x80 && !unicode.IsPrint(r):
			switch {
			case r < 0x100:
				b = append(b, `\x`...)
				b = append(b, hex2(uint64(r), 2)...)
			case r < 0x10000:
				b = append(b, `\u`...)
				b = append(b, hex2(uint64(r), 4)...)
			default:
				b = append(b, `\U`...)
				b = append(b, hex2(uint64(r), 8)...)
			}
		default:
			b = utf8.AppendRune(b, r)
		}
	}
	return string(append(b, q))
}

func hex2(v uint64, width int) string {
	s := strconv.FormatUint(v, 16)
	return strings.Repeat("0", width-len(s)) + s
}

// unrepr reverses pyRepr for the escapes it writes; ok is false when s is
// not a quoted Python string.
func unrepr(s string) (string, bool) {
	if len(s) < 2 || (s[0] != '\'' && s[0] != '"') || s[len(s)-1] != s[0] {
		return "", false
	}
	body := s[1 : len(s)-1]
	if !strings.ContainsRune(body, '\\') {
		return body, true
	}
	var b strings.Builder
	for i := 0; i < len(body); i++ {
		c := body[i]
		if c != '\\' || i+1 == len(body) {
			b.WriteByte(c)
			continue
		}
		i++
		switch e := body[i]; e {
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'x', 'u', 'U':
			n := map[byte]int{'x': 2, 'u': 4, 'U': 8}[e]
			if end := i + 1 + n; end <= len(body) {
				if v, err := strconv.ParseUint(body[i+1:end], 16, 32); err == nil && utf8.ValidRune(rune(v)) {
					b.WriteRune(rune(v))
					i = end - 1
					continue
				}
			}
			b.WriteByte('\\')
			b.WriteByte(e)
		default:
			b.WriteByte(e) // \\, \', \"
		}
	}
	return b.String(), true
}
