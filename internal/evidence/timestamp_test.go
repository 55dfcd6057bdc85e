package evidence

import (
	"testing"
	"time"
)

func TestParseStamp(t *testing.T) {
	cet := time.FixedZone("CET", 3600)
	tests := []struct {
		name, line string
		loc        *time.Location
		want       time.Time
		pre, rest  string
	}{
		{"python", "2026-01-11 12:59:17,123 ERROR django.request x", time.UTC,
			time.Date(2026, 1, 11, 12, 59, 17, 123e6, time.UTC), "", "ERROR django.request x"},
		{"python local", "2026-01-11 12:59:17,123 ERROR x", cet,
			time.Date(2026, 1, 11, 12, 59, 17, 123e6, cet), "", "ERROR x"},
		{"python level before [x]", "2026-01-11 12:59:17,123 ERROR [django.request:224] x", cet,
			time.Date(2026, 1, 11, 12, 59, 17, 123e6, cet), "", "ERROR [django.request:224] x"},
		{"postgres", "2026-01-11 12:59:17.123 UTC [123] LOG:  x", cet,
			time.Date(2026, 1, 11, 12, 59, 17, 123e6, time.UTC), "", "[123] LOG:  x"},
		{"postgres abbreviation", "2026-01-11 12:59:17.123 CET [123] LOG:  x", cet,
			time.Date(2026, 1, 11, 12, 59, 17, 123e6, cet), "", "[123] LOG:  x"},
		{"pgbouncer", "2023-12-18 18:58:03.882 UTC [1] LOG C-0x7f: x", cet,
			time.Date(2023, 12, 18, 18, 58, 3, 882e6, time.UTC), "", "[1] LOG C-0x7f: x"},
		{"redis", "1234:M 11 Jan 2026 12:59:17.123 * Ready", time.UTC,
			time.Date(2026, 1, 11, 12, 59, 17, 123e6, time.UTC), "", "* Ready"},
		{"gunicorn", "[2025-07-05 12:18:55 +0000] [105] [CRITICAL] WORKER TIMEOUT (pid:106)", cet,
			time.Date(2025, 7, 5, 12, 18, 55, 0, time.UTC), "", "[105] [CRITICAL] WORKER TIMEOUT (pid:106)"},
		{"gunicorn offset", "[2025-07-05 12:18:55 +0200] [105] [INFO] x", time.UTC,
			time.Date(2025, 7, 5, 10, 18, 55, 0, time.UTC), "", "[105] [INFO] x"},
		{"nginx error", "2026/01/11 12:59:17 [error] 31#31: *5 x", time.UTC,
			time.Date(2026, 1, 11, 12, 59, 17, 0, time.UTC), "", "[error] 31#31: *5 x"},
		{"go log micro", "2026/01/11 12:59:17.654321 x", time.UTC,
			time.Date(2026, 1, 11, 12, 59, 17, 654321e3, time.UTC), "", "x"},
		{"access", `10.0.0.1 - bob [11/Jan/2026:12:59:17 +0000] "GET / HTTP/1.1" 200 5`, cet,
			time.Date(2026, 1, 11, 12, 59, 17, 0, time.UTC), "10.0.0.1 - bob", `"GET / HTTP/1.1" 200 5`},
		{"access ipv6", `::1 - - [11/Jan/2026:12:59:17 -0500] "GET / HTTP/1.1" 200 5`, time.UTC,
			time.Date(2026, 1, 11, 17, 59, 17, 0, time.UTC), "::1 - -", `"GET / HTTP/1.1" 200 5`},
		{"rfc3339", "2026-01-11T12:59:17.123456789Z level=info", cet,
			time.Date(2026, 1, 11, 12, 59, 17, 123456789, time.UTC), "", "level=info"},
		{"rfc3339 offset", "2026-01-11T12:59:17+01:00 x", time.UTC,
			time.Date(2026, 1, 11, 11, 59, 17, 0, time.UTC), "", "x"},
		{"slog", `time=2026-01-11T12:59:17.123Z level=ERROR msg="x"`, cet,
			time.Date(2026, 1, 11, 12, 59, 17, 123e6, time.UTC), "", `level=ERROR msg="x"`},
		{"django runserver", `[27/Nov/2025 09:26:00] "POST /accounts/login/ HTTP/1.1" 500 145`, time.UTC,
			time.Date(2025, 11, 27, 9, 26, 0, 0, time.UTC), "", `"POST /accounts/login/ HTTP/1.1" 500 145`},
		{"python bracketed", "[2026-01-11 12:59:17,123] ERROR x", time.UTC,
			time.Date(2026, 1, 11, 12, 59, 17, 123e6, time.UTC), "", "ERROR x"},
		{"level first", "ERROR 2026-01-11 12:59:17,123 views 1 2 x", time.UTC,
			time.Date(2026, 1, 11, 12, 59, 17, 123e6, time.UTC), "ERROR", "views 1 2 x"},
		{"ruby logger", "E, [2026-01-11T12:59:17.123456 #1234] ERROR -- : x", time.UTC,
			time.Date(2026, 1, 11, 12, 59, 17, 123456e3, time.UTC), "", "ERROR -- : x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, pre, rest, ok := parseStamp(tt.line, tt.loc)
			if !ok {
				t.Fatalf("parseStamp(%q): no stamp", tt.line)
			}
			if !got.Equal(tt.want) || got.Location().String() != tt.want.Location().String() && tt.want.Location() != time.UTC {
				t.Errorf("time = %v, want %v", got, tt.want)
			}
			if pre != tt.pre || rest != tt.rest {
				t.Errorf("pre, rest = %q, %q; want %q, %q", pre, rest, tt.pre, tt.rest)
			}
		})
	}
}

func TestParseStampRejects(t *testing.T) {
	for _, line := range []string{
		"",
		"  File \"x.py\", line 3, in f",
		"psycopg.errors.ProtocolViolation: query_wait_timeout",
		"2026-13-11 12:59:17 bad month",
		"2026-01-11 25:59:17 bad hour",
		"12345 is not a stamp",
		"goroutine 1 [running]:",
		"main.main()",
		"Traceback (most recent call last):",
		"ERROR:django.request:Internal Server Error: /x",
		"KeyError: [1/2]",
	} {
		if _, _, _, ok := parseStamp(line, time.UTC); ok {
			t.Errorf("parseStamp(%q) found a stamp", line)
		}
	}
}

func TestParseStampAllocs(t *testing.T) {
	line := "2026-01-11 12:59:17.123 UTC [123] LOG:  checkpoint starting: time"
	if n := testing.AllocsPerRun(100, func() { parseStamp(line, time.UTC) }); n != 0 {
		t.Errorf("parseStamp allocates %v times per line", n)
	}
}

func FuzzParseStamp(f *testing.F) {
	for _, s := range []string{
		"2026-01-11 12:59:17,123 ERROR x", "2026-01-11 12:59:17.123 UTC [1] LOG:  x",
		"1234:M 11 Jan 2026 12:59:17.123 * x", "[2025-07-05 12:18:55 +0000] [1] [INFO] x",
		"2026/01/11 12:59:17 [error] 1#1: x", `1.2.3.4 - - [11/Jan/2026:12:59:17 +0000] "GET / HTTP/1.1" 200 1`,
		"2026-01-11T12:59:17.123+01:00 x", "time=2026-01-11T12:59:17Z level=INFO", "[27/Nov/2025 09:26:00] x",
		"E, [2026-01-11T12:59:17.1 #1] ERROR -- : x", "WARN 2026-01-11 12:59:17,1 x",
		"[pid: 12|app: 0|req: 1/1] 127.0.0.1 () {24 vars in 269 bytes} [Sun Dec  6 05:34:32 2026] GET / => generated 5 bytes in 0 msecs (HTTP/1.1 200) 1 headers in 45 bytes (1 switches on core 0)",
		"Sun Dec  6 05:34:35 2026 - *** HARAKIRI ON WORKER 1 (pid: 4684, try: 1) ***", "[06-Dec-2026 10:00:00] WARNING: [pool www] x",
		"[ E 2026-12-06 10:00:12.1234 1021/T8 a.cpp:248 ]: x", "Dec  6 10:00:05 lb haproxy[812]: 10.0.0.9:5 [06/Dec/2026:10:00:00.123] fe be/s 0/0/0/0/0 200 1 - - ---- 1/1/1/1/0 0/0 \"GET / HTTP/1.1\"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		tm, pre, rest, ok := parseStamp(line, time.UTC)
		if !ok {
			return
		}
		if tm.IsZero() {
			t.Errorf("parseStamp(%q): ok with a zero time", line)
		}
		if len(pre)+len(rest) > len(line) {
			t.Errorf("parseStamp(%q): pre %q and rest %q longer than the line", line, pre, rest)
		}
		if y := tm.Year(); y < 0 || y > 10000 {
			t.Errorf("parseStamp(%q): year %d", line, y)
		}
	})
}
