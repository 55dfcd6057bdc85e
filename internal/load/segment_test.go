package load

import (
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stampede-load/stampede/internal/testserver"
)

func TestParseSegment(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Segment
		err  bool
	}{
		{"0/3", Segment{0, 3}, false},
		{" 2/3 ", Segment{2, 3}, false},
		{"0/1", Segment{0, 1}, false},
		{"3/3", Segment{}, true},
		{"-1/3", Segment{}, true},
		{"1/0", Segment{}, true},
		{"1", Segment{}, true},
		{"a/b", Segment{}, true},
		{"", Segment{}, true},
	} {
		got, err := ParseSegment(tc.in)
		if (err != nil) != tc.err || (!tc.err && got != tc.want) {
			t.Errorf("ParseSegment(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestSegmentShare(t *testing.T) {
	for _, tc := range []struct {
		total, count int
		want         []int
	}{
		{100, 3, []int{34, 33, 33}},
		{99, 3, []int{33, 33, 33}},
		{101, 3, []int{34, 34, 33}},
		{5, 5, []int{1, 1, 1, 1, 1}},
		{7, 1, []int{7}},
		{2, 3, []int{1, 1, 0}},
	} {
		var got []int
		sum := 0
		for i := range tc.count {
			n := Segment{i, tc.count}.Share(tc.total)
			got = append(got, n)
			sum += n
		}
		if !slices.Equal(got, tc.want) || sum != tc.total {
			t.Errorf("%d over %d: %v (sum %d), want %v", tc.total, tc.count, got, sum, tc.want)
		}
	}
}

// segmentPlan is a whole plan of the given model over rows, with no
// request run.
func segmentPlan(model Model, users int, rate float64, rows int) *Plan {
	p := &Plan{Model: model, Users: users, Assignment: Unique, Header: []string{"username"}}
	if model == Open {
		p.ArrivalRate = rate
	} else {
		p.SpawnRate = rate
	}
	for i := range rows {
		p.Rows = append(p.Rows, []string{fmt.Sprintf("user%d", i+1)})
	}
	return p
}

// TestSegmentsMakeTheWhole: the segments of a plan start, together, the
// very users and arrivals of the whole plan at the same instants, with
// the same numbers and users-file rows, each once.
func TestSegmentsMakeTheWhole(t *testing.T) {
	for _, tc := range []struct {
		name  string
		model Model
		users int
		rate  float64
		count int
	}{
		{"closed 100 over 3", Closed, 100, 10, 3},
		{"closed 7 over 7", Closed, 7, 3.5, 7},
		{"closed 1000 over 16", Closed, 1000, 33.3, 16},
		{"open 50 max over 4", Open, 50, 120, 4},
		{"one segment", Closed, 10, 5, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			whole := segmentPlan(tc.model, tc.users, tc.rate, tc.users)
			type start struct {
				at  time.Duration
				row string
			}
			want := map[int]start{} // by user number
			at := whole.spawnOffset
			if tc.model == Open {
				at = whole.arrivalOffset
			}
			for j := range tc.users {
				want[whole.Segment.global(j)] = start{at(j), whole.row(whole.Segment.global(j))[0]}
			}
			got := map[int]start{}
			users, accounts := 0, 0
			var rate float64
			for i := range tc.count {
				sp, err := whole.ForSegment(Segment{i, tc.count})
				if err != nil {
					t.Fatal(err)
				}
				users += sp.Users
				accounts += sp.Accounts()
				at := sp.spawnOffset
				rate += sp.SpawnRate
				if tc.model == Open {
					at = sp.arrivalOffset
					rate += sp.ArrivalRate
				}
				for j := range sp.Users {
					n := sp.Segment.global(j)
					if _, dup := got[n]; dup {
						t.Fatalf("user %d started by two segments", n)
					}
					got[n] = start{at(j), sp.row(n)[0]}
				}
			}
			if users != tc.users || accounts != whole.Accounts() {
				t.Errorf("segments: %d users, %d accounts; want %d, %d", users, accounts, tc.users, whole.Accounts())
			}
			if d := rate - tc.rate; d > 1e-9 || d < -1e-9 {
				t.Errorf("segment rates sum to %v, want %v", rate, tc.rate)
			}
			if len(got) != len(want) {
				t.Fatalf("%d users started, want %d", len(got), len(want))
			}
			for n, w := range want {
				if got[n] != w {
					t.Errorf("user %d: segments start it at %v with row %q; the whole plan at %v with %q", n, got[n].at, got[n].row, w.at, w.row)
				}
			}
		})
	}
}

func TestForSegmentErrors(t *testing.T) {
	p := segmentPlan(Closed, 2, 1, 0)
	if _, err := p.ForSegment(Segment{2, 3}); err == nil || !strings.Contains(err.Error(), "load.users 2 is fewer than the 3 segments") {
		t.Errorf("2 users over 3 segments: %v", err)
	}
	if _, err := segmentPlan(Open, 2, 1, 0).ForSegment(Segment{2, 3}); err == nil || !strings.Contains(err.Error(), "load.max_users") {
		t.Errorf("open, 2 max users over 3 segments: %v", err)
	}
	if _, err := p.ForSegment(Segment{3, 3}); err == nil {
		t.Error("segment 3/3 accepted")
	}
	sp, err := p.ForSegment(Segment{0, 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sp.ForSegment(Segment{0, 2}); err == nil {
		t.Error("a segment of a segment accepted")
	}
	if p.Segment != (Segment{}) || p.Users != 2 {
		t.Errorf("ForSegment changed the whole plan: %+v", p)
	}
}

// TestSegmentsRun: three segments of a closed plan run for real; their
// results carry disjoint user numbers, each segment's own, and the users
// file's rows (the password) that go with them.
func TestSegmentsRun(t *testing.T) {
	ts := httptest.NewServer(testserver.New("pw"))
	defer ts.Close()
	whole := loginScenario(t, ts.URL, "pw")
	whole.Users, whole.SpawnRate, whole.Duration = 10, 50, 1500*time.Millisecond
	seen := map[int]int{} // user → segment
	for i := range 3 {
		sp, err := whole.ForSegment(Segment{i, 3})
		if err != nil {
			t.Fatal(err)
		}
		rs, e := collect(t, sp)
		if e.Users() != 0 || len(rs) == 0 {
			t.Fatalf("segment %d: %d results, %d users left", i, len(rs), e.Users())
		}
		users := map[int]bool{}
		for _, r := range rs {
			if r.Failed() {
				t.Errorf("segment %d: user %d: %s %s failed: %s", i, r.User, r.Method, r.Name, r.Reason)
				continue
			}
			if (r.User-1)%3 != i {
				t.Errorf("segment %d ran user %d", i, r.User)
			}
			if s, ok := seen[r.User]; ok && s != i {
				t.Errorf("user %d in segments %d and %d", r.User, s, i)
			}
			seen[r.User] = i
			users[r.User] = true
		}
		if len(users) != sp.Users {
			t.Errorf("segment %d: %d users sent requests, want %d", i, len(users), sp.Users)
		}
	}
	if len(seen) != 10 {
		t.Errorf("%d users over the segments, want 10", len(seen))
	}
}

func FuzzParseSegment(f *testing.F) {
	for _, s := range []string{"0/3", "2/3", " 1/2 ", "3/3", "-1/2", "1/0", "a/b", "1", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sg, err := ParseSegment(s)
		if err != nil {
			return
		}
		if sg.Validate() != nil {
			t.Fatalf("ParseSegment(%q) = %v, which does not validate", s, sg)
		}
		if again, err := ParseSegment(sg.String()); err != nil || again != sg {
			t.Fatalf("ParseSegment(%q) = %v; its String %q parses to %v, %v", s, sg, sg.String(), again, err)
		}
		total := 1000
		sum := 0
		for i := range min(sg.Count, 2000) {
			sum += Segment{i, sg.Count}.Share(total)
		}
		if sg.Count <= 2000 && sum != total {
			t.Fatalf("the shares of %d over %d segments sum to %d", total, sg.Count, sum)
		}
	})
}
