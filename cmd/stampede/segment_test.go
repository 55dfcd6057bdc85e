package main

import (
	"strings"
	"testing"
	"time"

	"github.com/stampede-load/stampede/internal/load"
)

func TestResolveSplit(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		flags   splitFlags
		env     map[string]string
		seg     load.Segment
		from    string
		count   int
		startAt string
		err     string // in the error; "" for none
	}{
		{name: "nothing", seg: load.Segment{}},
		{name: "flag", flags: splitFlags{segment: "1/3"}, seg: load.Segment{Index: 1, Count: 3}, from: "--segment", count: 3},
		{name: "a pod of the Job", env: map[string]string{envIndex: "2", envSegments: "4", envStartAt: "2026-03-01T12:00:03Z"},
			seg: load.Segment{Index: 2, Count: 4}, from: "$JOB_COMPLETION_INDEX/$STAMPEDE_SEGMENTS", count: 4, startAt: "2026-03-01T12:00:03Z"},
		{name: "the flag wins over the environment", flags: splitFlags{segment: "0/2", startAt: "2026-03-01T12:01:00Z"},
			env: map[string]string{envIndex: "2", envSegments: "4", envStartAt: "2026-03-01T12:00:03Z"},
			seg: load.Segment{Index: 0, Count: 2}, from: "--segment", count: 2, startAt: "2026-03-01T12:01:00Z"},
		{name: "an index without a count is no segment", env: map[string]string{envIndex: "2"}},
		{name: "the observer knows the count", flags: splitFlags{observeOnly: true}, env: map[string]string{envSegments: "5"}, count: 5},
		{name: "a start a little late", flags: splitFlags{startAt: "2026-03-01T11:59:58Z"}, startAt: "2026-03-01T11:59:58Z"},
		{name: "bad flag", flags: splitFlags{segment: "3/3"}, err: "--segment"},
		{name: "bad index", env: map[string]string{envIndex: "x", envSegments: "3"}, err: "$JOB_COMPLETION_INDEX/$STAMPEDE_SEGMENTS"},
		{name: "index out of range", env: map[string]string{envIndex: "3", envSegments: "3"}, err: "$JOB_COMPLETION_INDEX/$STAMPEDE_SEGMENTS"},
		{name: "start in the past", flags: splitFlags{startAt: "2026-03-01T11:59:00Z"}, err: "--start-at: start at 2026-03-01T11:59:00Z: 1m0s in the past"},
		{name: "env start in the past", env: map[string]string{envStartAt: "2026-03-01T11:00:00Z"}, err: "$STAMPEDE_START_AT"},
		{name: "start not RFC 3339", flags: splitFlags{startAt: "12:00"}, err: "--start-at \"12:00\": want an RFC 3339 instant"},
		{name: "observer with a segment", flags: splitFlags{observeOnly: true, segment: "0/2"}, err: "--observe-only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := resolveSplit(&tc.flags, func(k string) string { return tc.env[k] }, now)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one saying %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			at := ""
			if !s.startAt.IsZero() {
				at = s.startAt.Format(time.RFC3339)
			}
			if s.seg != tc.seg || s.from != tc.from || s.count != tc.count || at != tc.startAt {
				t.Errorf("got %v from %q, count %d, start %q; want %v from %q, count %d, start %q", s.seg, s.from, s.count, at, tc.seg, tc.from, tc.count, tc.startAt)
			}
		})
	}
}
