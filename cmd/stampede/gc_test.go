package main

import (
	"runtime/debug"
	"testing"
	"time"

	"github.com/stampede-load/stampede/internal/load"
)

// Many users with think time collect at GOGC=50; fewer users, no think
// time, or GOGC set by the user leave the collector alone.
func TestTuneGC(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)
	for _, tc := range []struct {
		name  string
		users int
		think time.Duration
		gogc  string
		want  int
	}{
		{"many thinking", 5000, time.Second, "", 50},
		{"few", 4999, time.Second, "", 100},
		{"no think", 100000, 0, "", 100},
		{"GOGC set", 100000, time.Minute, "200", 100},
	} {
		t.Setenv("GOGC", tc.gogc)
		debug.SetGCPercent(100)
		tuneGC(&load.Plan{Users: tc.users, ThinkMin: tc.think, ThinkMax: tc.think})
		if got := debug.SetGCPercent(100); got != tc.want {
			t.Errorf("%s: GOGC %d, want %d", tc.name, got, tc.want)
		}
	}
}
