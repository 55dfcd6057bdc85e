package diagnose

import (
	"strings"
	"testing"

	"github.com/stampede-load/stampede"
)

// A Redis at its client limit whose probe saw one slow PING (a busy host
// delays one reading now and then): still the connection limit, never an
// outage — one bad reading is a moment, even with a reset logged by the
// app. Two in a row are an outage.
func TestRedisLimitSurvivesOneSlowPing(t *testing.T) {
	for _, tc := range []struct {
		name     string
		slow     int // how many consecutive Redis readings are slow, from the 6th
		wantTop  string
		wantDown bool
	}{
		{"one slow reading", 1, IDRedisConnLimit, false},
		{"two in a row", 2, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := readTxtar(t, "testdata/redis-connection-limit.txtar")
			in := loadRun(t, files)
			n := 0
			for i := range in.Timeline {
				s := &in.Timeline[i]
				if s.Source != "redis" {
					continue
				}
				if n++; n >= 6 && n < 6+tc.slow {
					s.Values["ping_ms"] = 400
				}
			}
			// At its limit Redis closes the connections it refuses: the
			// app's client may log a reset as well as the refusal.
			for i := range in.Evidence {
				if e := &in.Evidence[i]; strings.Contains(e.Exception, "max number of clients") {
					e.Exception = "redis.exceptions.ConnectionError: Error 104 while writing to socket. Connection reset by peer."
					break
				}
			}
			d := Diagnose(in)
			var ids []string
			down := false
			for _, f := range d.Findings {
				ids = append(ids, f.ID+"("+string(f.Status)+","+f.CausedBy+")")
				if f.ID == IDRedisUnavailable && f.Status == stampede.Confirmed {
					down = true
				}
			}
			t.Logf("findings: %s", strings.Join(ids, " "))
			if tc.wantTop != "" && (len(d.Findings) == 0 || d.Findings[0].ID != tc.wantTop) {
				t.Errorf("top finding: want %s", tc.wantTop)
			}
			if down != tc.wantDown {
				t.Errorf("redis-unavailable confirmed: %v, want %v", down, tc.wantDown)
			}
		})
	}
}
