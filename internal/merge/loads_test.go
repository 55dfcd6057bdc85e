package merge

import (
	"testing"
	"time"

	"github.com/stampede-load/stampede/internal/rundir"
)

// Each segment changes its own share of the load from its own page: the
// merged run's load_changes are the whole load at each change.
func TestMergedLoadChanges(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	seg := func(users int, lc ...rundir.LoadChange) input {
		return input{meta: &rundir.Meta{Load: rundir.LoadFacts{Users: users, SpawnRate: 5}, LoadChanges: lc}}
	}
	tests := []struct {
		name string
		segs []input
		want []rundir.LoadChange
	}{
		{"no change anywhere", []input{seg(10), seg(10, rundir.LoadChange{T: at(0), Users: 10, SpawnRate: 5, By: "plan"})}, nil},
		{"one segment ramps", []input{
			seg(10, rundir.LoadChange{T: at(0), Users: 10, SpawnRate: 5, By: "plan"}, rundir.LoadChange{T: at(30), Users: 40, SpawnRate: 5, By: "ui"}),
			seg(10, rundir.LoadChange{T: at(0).Add(200 * time.Millisecond), Users: 10, SpawnRate: 5, By: "plan"}),
		}, []rundir.LoadChange{
			{T: at(0), Users: 20, SpawnRate: 10, By: "plan"},
			{T: at(30), Users: 50, SpawnRate: 10, By: "ui"},
		}},
		{"both ramp at once, then one goes down", []input{
			seg(10, rundir.LoadChange{T: at(0), Users: 10, SpawnRate: 5, By: "plan"}, rundir.LoadChange{T: at(20), Users: 30, SpawnRate: 5, By: "api"},
				rundir.LoadChange{T: at(40), Users: 5, SpawnRate: 5, By: "api"}),
			seg(10, rundir.LoadChange{T: at(0), Users: 10, SpawnRate: 5, By: "plan"}, rundir.LoadChange{T: at(20), Users: 30, SpawnRate: 5, By: "api"}),
		}, []rundir.LoadChange{
			{T: at(0), Users: 20, SpawnRate: 10, By: "plan"},
			{T: at(20), Users: 60, SpawnRate: 10, By: "api"},
			{T: at(40), Users: 35, SpawnRate: 10, By: "api"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mergedLoadChanges(tt.segs)
			if len(got) != len(tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			for i := range got {
				if !got[i].T.Equal(tt.want[i].T) || !sameLoad(got[i], tt.want[i]) || got[i].By != tt.want[i].By {
					t.Errorf("change %d: got %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}
