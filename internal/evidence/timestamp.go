package evidence

import (
	"strings"
	"time"
)

// parseStamp reads the timestamp a log line starts with, in any of the
// formats the package knows (see the package doc). It returns the time, the
// text before the stamp (an access log's client address, a level written
// before the time), the text after it with leading blanks removed (a closing
// bracket of the stamp is consumed), and whether a stamp was found.
//
// It is on the hot path: it looks at the first byte before trying anything,
// and never allocates. Lines without a zone are read in loc.
func parseStamp(s string, loc *time.Location) (t time.Time, pre, rest string, ok bool) {
	if len(s) < 8 {
		return
	}
	c := s[0]
	switch {
	case isDigit(c):
		if t, rest, ok = parseISOish(s, loc); ok {
			return t, "", rest, true
		}
		if t, rest, ok = parseRedis(s, loc); ok {
			return t, "", rest, true
		}
		return parseAccess(s, loc)
	case c == '[':
		if t, rest, ok = parseBracketed(s, loc); ok {
			return t, "", rest, true
		}
		if strings.HasPrefix(s, "[pid: ") {
			return parseUWSGIRequest(s, loc)
		}
		if len(s) > 30 && s[1] == ' ' && s[3] == ' ' {
			return parsePassenger(s, loc)
		}
		return
	case c == 't' && strings.HasPrefix(s, "time="):
		// slog and logfmt: time=2026-01-11T12:59:17.123Z level=ERROR msg=...
		v := s[5:]
		if len(v) > 0 && v[0] == '"' {
			v = v[1:]
		}
		if t, rest, ok = parseISOish(v, loc); ok {
			rest = strings.TrimLeft(rest, "\" ")
			return t, "", rest, true
		}
		return
	case c >= 'A' && c <= 'Z':
		// uWSGI's "Sun Dec  6 10:00:00 2026 - msg" (ctime).
		if len(s) > 27 && s[3] == ' ' && s[24] == ' ' && s[25] == '-' && s[26] == ' ' {
			if t, ok = parseCtime(s[:24], loc); ok {
				return t, "", trimBlank(s[27:]), true
			}
		}
		// A syslog prefix before a bracketed time: HAProxy's
		// "Dec  6 10:00:00 host haproxy[12]: 10.0.0.1:5 [06/Dec/2026:10:00:00.123] ...".
		if len(s) > 4 && s[3] == ' ' && month(s[:3]) != 0 {
			return parseAccess(s, loc)
		}
		// Ruby's Logger: "E, [2026-01-11T12:59:17.123456 #1234] ERROR -- : msg".
		if len(s) > 4 && s[1] == ',' && s[2] == ' ' && s[3] == '[' {
			if t, r, ok2 := parseISOish(s[4:], loc); ok2 {
				if i := strings.IndexByte(r, ']'); i >= 0 {
					r = r[i+1:]
				}
				return t, "", trimBlank(r), true
			}
			return
		}
		// A level written before the time: "ERROR 2026-01-11 12:59:17,123 ...".
		sp := strings.IndexByte(s, ' ')
		if sp > 2 && sp < 10 && sp+1 < len(s) && isDigit(s[sp+1]) && levelWord(s[:sp]) != "" {
			if t, rest, ok = parseISOish(s[sp+1:], loc); ok {
				return t, s[:sp], rest, true
			}
		}
		return
	}
	if isHexLetter(c) || c == ':' {
		return parseAccess(s, loc)
	}
	return
}

// parseISOish reads "YYYY-MM-DD[ T]HH:MM:SS[.,frac][zone]" (Python logging,
// PostgreSQL, PgBouncer, RFC 3339) and "YYYY/MM/DD HH:MM:SS[.frac]" (nginx,
// Go's log package).
func parseISOish(s string, loc *time.Location) (time.Time, string, bool) {
	if len(s) < 19 {
		return time.Time{}, "", false
	}
	sep := s[4]
	if sep != '-' && sep != '/' || s[7] != sep || s[13] != ':' || s[16] != ':' {
		return time.Time{}, "", false
	}
	if s[10] != ' ' && s[10] != 'T' {
		return time.Time{}, "", false
	}
	y, ok1 := atoi(s[0:4])
	mo, ok2 := atoi(s[5:7])
	d, ok3 := atoi(s[8:10])
	h, ok4 := atoi(s[11:13])
	mi, ok5 := atoi(s[14:16])
	sec, ok6 := atoi(s[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) {
		return time.Time{}, "", false
	}
	ns, i := parseFrac(s, 19)
	zone, i := parseZone(s, i, loc)
	return mkTime(y, mo, d, h, mi, sec, ns, zone, s[i:])
}

// mkTime validates the fields, so every format shares one range check, and
// returns the time with the rest of the line.
func mkTime(y, mo, d, h, mi, sec, ns int, loc *time.Location, rest string) (time.Time, string, bool) {
	// Years before 1970 do not occur in logs, and year 1 would read as
	// "no time" (the zero time.Time).
	if loc == nil || y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 {
		return time.Time{}, "", false
	}
	return time.Date(y, time.Month(mo), d, h, mi, sec, ns, loc), trimBlank(rest), true
}

// parseFrac reads ".123" or ",123456" at s[i:], returning nanoseconds.
func parseFrac(s string, i int) (int, int) {
	if i >= len(s) || (s[i] != '.' && s[i] != ',') || i+1 >= len(s) || !isDigit(s[i+1]) {
		return 0, i
	}
	i++
	ns, scale := 0, 100000000
	for ; i < len(s) && isDigit(s[i]); i++ {
		ns += int(s[i]-'0') * scale
		scale /= 10
	}
	return ns, i
}

// parseZone reads an optional zone after a time: "Z", "+0000", "+01:00",
// "-05", " UTC", " +0000", or an abbreviation such as " CET" when followed by
// " [" (the PostgreSQL and PgBouncer shape "%m [%p]"). A level word is never
// taken for a zone. Without a zone the line is in loc. Zones other than UTC,
// GMT and numeric offsets are read in loc as well: an abbreviation does not
// name an offset.
func parseZone(s string, i int, loc *time.Location) (*time.Location, int) {
	if i >= len(s) {
		return loc, i
	}
	switch s[i] {
	case 'Z':
		return time.UTC, i + 1
	case '+', '-':
		if z, n, ok := parseOffset(s[i:]); ok {
			return z, i + n
		}
		return loc, i
	case ' ':
	default:
		return loc, i
	}
	j := i + 1
	if j < len(s) && (s[j] == '+' || s[j] == '-') {
		if z, n, ok := parseOffset(s[j:]); ok {
			return z, j + n
		}
		return loc, i
	}
	k := j
	for k < len(s) && k-j < 6 && s[k] >= 'A' && s[k] <= 'Z' {
		k++
	}
	if k-j < 2 || k-j > 5 || (k < len(s) && s[k] != ' ' && s[k] != ']') {
		return loc, i
	}
	abbr := s[j:k]
	switch abbr {
	case "UTC", "GMT":
		return time.UTC, k
	}
	if levelWord(abbr) != "" {
		return loc, i
	}
	if k+1 < len(s) && s[k] == ' ' && s[k+1] == '[' {
		return loc, k
	}
	return loc, i
}

// parseOffset reads "+0000", "+00:00" or "+00" at the start of s.
func parseOffset(s string) (*time.Location, int, bool) {
	if len(s) < 3 {
		return nil, 0, false
	}
	sign := 1
	if s[0] == '-' {
		sign = -1
	}
	h, ok := atoi(s[1:3])
	if !ok || h > 23 {
		return nil, 0, false
	}
	n, m := 3, 0
	switch {
	case len(s) >= 5 && isDigit(s[3]) && isDigit(s[4]):
		m, _ = atoi(s[3:5])
		n = 5
	case len(s) >= 6 && s[3] == ':' && isDigit(s[4]) && isDigit(s[5]):
		m, _ = atoi(s[4:6])
		n = 6
	}
	if m > 59 {
		return nil, 0, false
	}
	off := sign * (h*3600 + m*60)
	if off == 0 {
		return time.UTC, n, true
	}
	return fixedZone(off), n, true
}

// fixedZone returns a zone for an offset in seconds, from a small cache for
// the whole hours so the common zones do not allocate.
func fixedZone(off int) *time.Location {
	if off%3600 == 0 && off >= -12*3600 && off <= 14*3600 {
		return hourZones[off/3600+12]
	}
	return time.FixedZone("", off)
}

var hourZones = func() []*time.Location {
	z := make([]*time.Location, 27)
	for h := -12; h <= 14; h++ {
		z[h+12] = time.FixedZone("", h*3600)
	}
	return z
}()

// parseRedis reads Redis's "1234:M 11 Jan 2026 12:59:17.123 * msg"; the
// role letter is one of M, S, C, X.
func parseRedis(s string, loc *time.Location) (time.Time, string, bool) {
	i := 0
	for i < len(s) && i < 8 && isDigit(s[i]) {
		i++
	}
	if i == 0 || i+3 > len(s) || s[i] != ':' || s[i+2] != ' ' {
		return time.Time{}, "", false
	}
	switch s[i+1] {
	case 'M', 'S', 'C', 'X':
	default:
		return time.Time{}, "", false
	}
	return parseDayMonYear(s[i+3:], ' ', ' ', loc)
}

// parseDayMonYear reads "11 Jan 2026 12:59:17[.123]" (sep ' ', tsep ' ') or
// "11/Jan/2026:12:59:17" (sep '/', tsep ':') and "27/Nov/2025 09:26:00"
// (sep '/', tsep ' '), followed by an optional zone.
func parseDayMonYear(s string, sep, tsep byte, loc *time.Location) (time.Time, string, bool) {
	if len(s) < 20 || s[2] != sep || s[6] != sep || s[11] != tsep || s[14] != ':' || s[17] != ':' {
		return time.Time{}, "", false
	}
	d, ok1 := atoi(s[0:2])
	mo := month(s[3:6])
	y, ok2 := atoi(s[7:11])
	h, ok3 := atoi(s[12:14])
	mi, ok4 := atoi(s[15:17])
	sec, ok5 := atoi(s[18:20])
	if !(ok1 && ok2 && ok3 && ok4 && ok5) || mo == 0 {
		return time.Time{}, "", false
	}
	ns, i := parseFrac(s, 20)
	zone, i := parseZone(s, i, loc)
	return mkTime(y, mo, d, h, mi, sec, ns, zone, s[i:])
}

// parseBracketed reads a stamp in brackets: gunicorn's
// "[2025-07-05 12:18:55 +0000]", Python's "[2026-01-11 12:59:17,123]",
// Django runserver's "[27/Nov/2025 09:26:00]" and the access-log style
// "[11/Jan/2026:12:59:17 +0000]".
func parseBracketed(s string, loc *time.Location) (time.Time, string, bool) {
	in := s[1:]
	var (
		t    time.Time
		rest string
		ok   bool
	)
	if len(in) > 4 && isDigit(in[2]) {
		t, rest, ok = parseISOish(in, loc)
	} else if len(in) > 12 && in[2] == '/' {
		if in[11] == ':' {
			t, rest, ok = parseDayMonYear(in, '/', ':', loc)
		} else {
			t, rest, ok = parseDayMonYear(in, '/', ' ', loc)
		}
	} else if len(in) > 12 && in[2] == '-' {
		t, rest, ok = parseDayMonYear(in, '-', ' ', loc) // php-fpm
	}
	if !ok || len(rest) == 0 || rest[0] != ']' {
		return time.Time{}, "", false
	}
	return t, trimBlank(rest[1:]), true
}

// parseAccess finds the "[11/Jan/2026:12:59:17 +0000]" of a common or
// combined access log line; the text before it (client, ident, user) is pre.
func parseAccess(s string, loc *time.Location) (time.Time, string, string, bool) {
	lim := s
	if len(lim) > 120 {
		lim = lim[:120]
	}
	i := -1
	for from := 0; ; {
		k := strings.Index(lim[from:], " [")
		if k < 0 {
			return time.Time{}, "", "", false
		}
		i = from + k + 1
		if i+13 <= len(s) && s[i+3] == '/' && isDigit(s[i+1]) {
			break
		}
		from = i
	}
	t, rest, ok := parseBracketed(s[i:], loc)
	if !ok {
		return time.Time{}, "", "", false
	}
	return t, s[:i-1], rest, true
}

var months = [...]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}

// month returns 1..12 for an English month abbreviation, 0 otherwise.
func month(s string) int {
	for i, m := range months {
		if s == m {
			return i + 1
		}
	}
	return 0
}

// atoi parses a short run of decimal digits.
func atoi(s string) (int, bool) {
	if len(s) == 0 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}

func isDigit(c byte) bool     { return c >= '0' && c <= '9' }
func isHexLetter(c byte) bool { return c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// trimBlank removes leading spaces and tabs.
func trimBlank(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	return s
}

// parseCtime reads C's ctime, "Sun Dec  6 10:00:00 2026" (24 bytes, the
// day padded with a blank), in loc.
func parseCtime(s string, loc *time.Location) (time.Time, bool) {
	if len(s) != 24 || s[3] != ' ' || s[7] != ' ' || s[10] != ' ' || s[13] != ':' || s[16] != ':' || s[19] != ' ' {
		return time.Time{}, false
	}
	mo := month(s[4:7])
	day := s[8:10]
	if day[0] == ' ' {
		day = day[1:]
	}
	d, ok1 := atoi(day)
	h, ok2 := atoi(s[11:13])
	mi, ok3 := atoi(s[14:16])
	sec, ok4 := atoi(s[17:19])
	y, ok5 := atoi(s[20:24])
	if mo == 0 || !(ok1 && ok2 && ok3 && ok4 && ok5) {
		return time.Time{}, false
	}
	t, _, ok := mkTime(y, mo, d, h, mi, sec, 0, loc, "")
	return t, ok
}

// parseUWSGIRequest reads uWSGI's request log line,
// "[pid: 12|app: 0|req: 5/9] 10.0.0.1 () {34 vars in 612 bytes} [Sun Dec  6 10:00:00 2026] GET /p => generated ...":
// the time is the bracketed ctime, pre the client address, rest the text
// from the method on.
func parseUWSGIRequest(s string, loc *time.Location) (time.Time, string, string, bool) {
	end := strings.Index(s, "] ")
	if end < 0 || end > 80 {
		return time.Time{}, "", "", false
	}
	after := s[end+2:]
	client, _, _ := strings.Cut(after, " ")
	lim := after
	if len(lim) > 300 {
		lim = lim[:300]
	}
	i := strings.Index(lim, "} [")
	if i < 0 || i+3+25 > len(after) || after[i+3+24] != ']' {
		return time.Time{}, "", "", false
	}
	t, ok := parseCtime(after[i+3:i+3+24], loc)
	if !ok {
		return time.Time{}, "", "", false
	}
	return t, client, trimBlank(after[i+3+25:]), true
}

// parsePassenger reads Passenger's "[ E 2026-12-06 10:00:12.1234 1021/T8 file.cpp:248 ]: msg":
// the letter is the level (returned as pre), the time has no zone.
func parsePassenger(s string, loc *time.Location) (time.Time, string, string, bool) {
	var level string
	switch s[2] {
	case 'C':
		level = "CRITICAL"
	case 'E':
		level = "ERROR"
	case 'W':
		level = "WARNING"
	case 'N':
		level = "NOTICE"
	case 'I':
		level = "INFO"
	case 'D':
		level = "DEBUG"
	default:
		return time.Time{}, "", "", false
	}
	t, rest, ok := parseISOish(s[4:], loc)
	if !ok {
		return time.Time{}, "", "", false
	}
	end := strings.Index(rest, " ]: ")
	if end < 0 || end > 120 {
		return time.Time{}, "", "", false
	}
	return t, level, rest[end+4:], true
}
