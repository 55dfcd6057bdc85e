package diagnose

import (
	"math/rand"
	"testing"
	"time"

	"github.com/stampede-load/stampede"
)

// A page slow by itself under load: its requests are long and often in
// flight, so a statement shifted away in time still lands inside one of
// them by chance (here about 14 times in 30). Of 30 logged statements, 21
// run inside its requests, each filling half of one, and the 9 from
// elsewhere land inside one by chance too: 25 against chance's 14, short of
// twice chance, but 3 standard deviations above it: the page issues them.
// A page whose long requests are always in flight (24 of 30 by chance,
// 23 shifted) is not named. (The shape of the Rails stack's dropped index
// on a busy machine, where the join named no issuer and left the slow
// query "possible".)
func TestJoinWhenChanceIsHigh(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	s := newSim(200 * time.Second)
	var ivs []interval
	for i := 0; i < 30; i++ {
		start := 2 + 5.8*float64(i) + rng.Float64()*0.4
		lat := 2.4 + rng.Float64()*1.6
		s.rs = append(s.rs, stampede.Result{Start: s.at(start), Name: "GET /recap", Method: "GET", Status: 200,
			Latency: time.Duration(lat * float64(time.Second)), TTFB: time.Duration(lat * 0.95 * float64(time.Second))})
		if i%10 < 7 { // 21 of the 30 statements: inside a recap request
			from := start + lat*0.4
			ivs = append(ivs, interval{from: s.at(from), to: s.at(from + lat*0.5), ms: lat * 500})
		} else { // the others: at a time of their own
			from := 2 + rng.Float64()*180
			ivs = append(ivs, interval{from: s.at(from), to: s.at(from + 1.2), ms: 1200})
		}
	}
	// A page whose long requests are always in flight, issuing nothing.
	for sec := 2.0; sec < 190; sec += 1.3 {
		s.rs = append(s.rs, stampede.Result{Start: s.at(sec), Name: "GET /items", Method: "GET", Status: 200, Latency: ms(2000), TTFB: ms(1900)})
	}
	s.reqs(2, 190, 4, "GET", "GET /dashboard", constLat(ms(40)), nil)
	c := newCtx(s.input())
	iss := c.containers(ivs)
	var names []string
	for _, is := range iss {
		names = append(names, is.e.Name)
	}
	if len(iss) == 0 || iss[0].e.Name != "GET /recap" {
		t.Fatalf("issuers %v: want GET /recap first", names)
	}
	for _, is := range iss {
		if is.e.Name != "GET /recap" {
			t.Errorf("issuers %v: %s issues none of the statements", names, is.e.Name)
		}
	}
}
