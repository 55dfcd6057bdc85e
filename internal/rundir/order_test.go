package rundir

import (
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	stampede "github.com/stampede-load/stampede"
)

// results returns n results completing every step from t0, User numbering
// them from 1 in completion order.
func results(n int, step time.Duration) []stampede.Result {
	t0 := time.Unix(1_800_000_000, 0)
	rs := make([]stampede.Result, n)
	for i := range rs {
		lat := time.Duration(i%7) * time.Millisecond
		rs[i] = stampede.Result{Start: t0.Add(time.Duration(i)*step - lat), Latency: lat, User: i + 1, Name: "/", Method: "GET"}
	}
	return rs
}

func TestEndOrder(t *testing.T) {
	const n = 2000
	step := 10 * time.Millisecond // 2 s of slack hold 200 results
	for _, tc := range []struct {
		name    string
		shuffle func([]stampede.Result, *rand.Rand)
		sorted  bool // the output is in completion order
	}{
		{"in order", func([]stampede.Result, *rand.Rand) {}, true},
		{"disorder within the slack", func(rs []stampede.Result, rng *rand.Rand) {
			// Swap neighbours up to 150 results (1.5 s) apart.
			for i := 0; i+150 < len(rs); i += 151 {
				j := i + 1 + rng.IntN(150)
				rs[i], rs[j] = rs[j], rs[i]
			}
		}, true},
		{"one result 5 s late", func(rs []stampede.Result, _ *rand.Rand) {
			late := rs[100]
			copy(rs[100:], rs[101:601])
			rs[600] = late
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := results(n, step)
			tc.shuffle(in, rand.New(rand.NewPCG(1, 2)))
			var out []stampede.Result
			var o EndOrder
			emit := func(r *stampede.Result) error { out = append(out, *r); return nil }
			for i := range in {
				if err := o.Push(&in[i], emit); err != nil {
					t.Fatal(err)
				}
			}
			if err := o.Flush(emit); err != nil {
				t.Fatal(err)
			}
			if len(out) != n {
				t.Fatalf("%d results out, %d in", len(out), n)
			}
			users := make([]int, n)
			for i, r := range out {
				users[i] = r.User
			}
			isSorted := slices.IsSortedFunc(out, func(a, b stampede.Result) int { return a.End().Compare(b.End()) })
			if isSorted != tc.sorted {
				t.Errorf("output in completion order: %v, want %v", isSorted, tc.sorted)
			}
			slices.Sort(users)
			for i, u := range users {
				if u != i+1 {
					t.Fatalf("user %d missing or doubled in the output", i+1)
				}
			}
			// The memory held: the slack's worth of results, and a few.
			if h := o.Held(); h > 220 {
				t.Errorf("held %d results at once, want about 200 (2 s at 100/s)", h)
			}
		})
	}
}

func TestEndOrderTiesKeepArrivalOrder(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	var o EndOrder
	var got []int
	emit := func(r *stampede.Result) error { got = append(got, r.User); return nil }
	for i := 1; i <= 5; i++ {
		o.Push(&stampede.Result{Start: t0, Latency: time.Second, User: i}, emit)
	}
	o.Push(&stampede.Result{Start: t0, User: 6}, emit) // completed a second earlier
	o.Flush(emit)
	if want := []int{6, 1, 2, 3, 4, 5}; !reflect.DeepEqual(got, want) {
		t.Errorf("order %v, want %v", got, want)
	}
}

func TestRequestReader(t *testing.T) {
	dir := t.TempDir()
	w, err := NewRequestWriter(dir)
	if err != nil {
		t.Fatal(err)
	}
	in := results(3, time.Second)
	for i := range in {
		w.Write(&in[i])
	}
	w.Close()
	rd, err := OpenRequests(dir, 64)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	var r stampede.Result
	for i := range in {
		if err := rd.Next(&r); err != nil || r != in[i] || rd.Line() != i+2 {
			t.Fatalf("result %d: %+v (line %d), %v; want %+v", i, r, rd.Line(), err, in[i])
		}
	}
	if err := rd.Next(&r); err != io.EOF {
		t.Errorf("after the last: %v, want io.EOF", err)
	}
}

func TestJSONLReader(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.jsonl")
	os.WriteFile(path, []byte("{\"a\":1}\n\n  \n{\"a\":2}\n{\"a\":"), 0o644)
	r, err := OpenJSONL(path, 16)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var got []string
	var lines []int
	for {
		b, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(b))
		lines = append(lines, r.Line())
	}
	if want := []string{`{"a":1}`, `{"a":2}`}; !reflect.DeepEqual(got, want) || !reflect.DeepEqual(lines, []int{1, 4}) {
		t.Errorf("lines %q at %v; want %q at [1 4] (blank lines and the torn last one skipped)", got, lines, want)
	}
}

func TestMetaSegments(t *testing.T) {
	dir := t.TempDir()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	in := &Meta{Run: "seg-1", Start: at, Segment: &Segment{Index: 1, Count: 3, StartAt: at, Digest: "sha256:x", WholeLoad: &LoadFacts{Users: 100}},
		Segments: &Segments{Count: 3, Merged: []int{0, 1}, Missing: []int{2}, Partial: []int{}, Dirs: []string{"a", "b"}}}
	if err := WriteMeta(dir, in); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, MetaFile))
	for _, key := range []string{`"segment"`, `"start_at"`, `"scenario_digest"`, `"whole_load"`, `"segments"`, `"missing"`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("meta.json lacks %s:\n%s", key, b)
		}
	}
	out, err := ReadMeta(dir)
	if err != nil || !reflect.DeepEqual(out.Segment, in.Segment) || !reflect.DeepEqual(out.Segments, in.Segments) {
		t.Errorf("read back %+v %+v, %v", out.Segment, out.Segments, err)
	}
}
