package merge

import (
	"testing"
	"time"

	"github.com/stampede-load/stampede/internal/rundir"
)

// The client addresses a merged run's server saw: one per generator host,
// or as many as each host spread its users over (--local-ips); segments on
// one host share its addresses.
func TestMergedSourceIPs(t *testing.T) {
	start := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	seg := func(host string, ips int) input {
		return input{meta: &rundir.Meta{Host: host, Start: start, End: start.Add(time.Minute),
			Load: rundir.LoadFacts{Model: "closed", Users: 10, SourceIPs: ips}, Segment: &rundir.Segment{}}}
	}
	for _, c := range []struct {
		name string
		segs []input
		want int
	}{
		{"one address per host", []input{seg("pod-0", 1), seg("pod-1", 1), seg("pod-2", 1)}, 3},
		{"four addresses on each of two hosts", []input{seg("pod-0", 4), seg("pod-1", 4)}, 8},
		{"two segments on one host share its addresses", []input{seg("box", 4), seg("box", 4)}, 4},
		{"an old segment without the count", []input{seg("pod-0", 0), seg("pod-1", 2)}, 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := mergedMeta(t.TempDir(), c.segs, nil, &rundir.Segments{Count: len(c.segs)}, start.Add(time.Minute), nil)
			if m.Load.SourceIPs != c.want {
				t.Errorf("source_ips %d, want %d", m.Load.SourceIPs, c.want)
			}
		})
	}
}
