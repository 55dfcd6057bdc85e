package diagnose

import (
	"sort"
	"strings"
	"testing"

	"github.com/stampede-load/stampede"
)

// The cases that used to flip between two runs of one fault: a lock (or
// another specific mechanism) and the CPU, both confirmed, explaining
// nearly as many requests, one of them a few more failures (client
// timeouts) in one run and not in the next. The order must not depend on
// such noise: the specific mechanism comes first every time, and each says
// the other is close.
func TestRankingStable(t *testing.T) {
	for _, tc := range []struct {
		name       string
		lock, cpu  tally
		want       string
		wantClosed bool
	}{
		{"lock-more-slow", tally{failures: 0, slow: 300}, tally{failures: 3, slow: 260}, IDLockContention, true},
		{"cpu-a-few-more", tally{failures: 0, slow: 280}, tally{failures: 4, slow: 300}, IDLockContention, true},
		{"cpu-far-more", tally{failures: 0, slow: 100}, tally{failures: 0, slow: 400}, IDCPUSaturation, false},
		{"cpu-many-failures", tally{failures: 0, slow: 300}, tally{failures: 60, slow: 240}, IDCPUSaturation, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lock := &verdict{id: IDLockContention, status: stampede.Confirmed, conf: 0.9, total: tc.lock}
			cpu := &verdict{id: IDCPUSaturation, status: stampede.Confirmed, conf: 0.8, total: tc.cpu}
			for _, order := range [][]*verdict{{lock, cpu}, {cpu, lock}} {
				found := append([]*verdict(nil), order...)
				for _, v := range found {
					v.evidence = nil
				}
				sort.SliceStable(found, func(i, j int) bool { return less(found[i], found[j]) })
				noteClose(found)
				if found[0].id != tc.want {
					t.Errorf("top %s, want %s", found[0].id, tc.want)
				}
				closed := false
				for _, e := range found[0].evidence {
					if e.Source == "ranking" && strings.Contains(e.Text, "close to "+found[1].id) {
						closed = true
					}
				}
				if closed != tc.wantClosed {
					t.Errorf("close note on the top finding: %v, want %v (%+v)", closed, tc.wantClosed, found[0].evidence)
				}
			}
		})
	}
}
