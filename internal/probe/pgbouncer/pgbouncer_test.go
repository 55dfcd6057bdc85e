package pgbouncer

import (
	"math"
	"testing"
)

// The SHOW POOLS column sets of 1.18–1.23 and of 1.24+ (load_balance_hosts
// appended), from fault-signatures §1.3; values are text, as the simple
// protocol returns them.
var (
	pools118 = Table{
		Cols: []string{"database", "user", "cl_active", "cl_waiting", "cl_active_cancel_req", "cl_waiting_cancel_req",
			"sv_active", "sv_active_cancel", "sv_being_canceled", "sv_idle", "sv_used", "sv_tested", "sv_login",
			"maxwait", "maxwait_us", "pool_mode"},
		Rows: [][]string{
			{"app", "app", "2", "8", "0", "0", "2", "0", "0", "0", "0", "0", "0", "3", "250000", "session"},
			{"other", "bob", "1", "1", "0", "0", "1", "0", "0", "1", "1", "0", "1", "0", "900000", "transaction"},
			{"pgbouncer", "pgbouncer", "1", "5", "0", "0", "0", "0", "0", "0", "0", "0", "0", "99", "0", "statement"},
		},
	}
	pools125 = Table{
		Cols: []string{"database", "user", "cl_active", "cl_waiting", "cl_active_cancel_req", "cl_waiting_cancel_req",
			"sv_active", "sv_active_cancel", "sv_being_canceled", "sv_idle", "sv_used", "sv_tested", "sv_login",
			"maxwait", "maxwait_us", "pool_mode", "load_balance_hosts"},
		Rows: [][]string{
			{"app", "app", "2", "8", "0", "0", "2", "0", "0", "0", "0", "0", "0", "3", "250000", "session", ""},
		},
	}
)

func TestPools(t *testing.T) {
	for name, tc := range map[string]struct {
		t    Table
		want map[string]float64
	}{
		"1.18": {pools118, map[string]float64{
			"cl_active": 3, "cl_waiting": 9, "sv_active": 3, "sv_idle": 1, "sv_used": 1, "sv_login": 1,
			"maxwait_s": 3.25, "pool:app/app:cl_waiting": 8, "pool:app/app:maxwait_s": 3.25,
			"pool:other/bob:maxwait_s": 0.9, "pool:other/bob:sv_idle": 1,
		}},
		"1.25":  {pools125, map[string]float64{"cl_waiting": 8, "maxwait_s": 3.25, "pool:app/app:sv_active": 2}},
		"empty": {Table{}, map[string]float64{"cl_waiting": 0, "maxwait_s": 0}},
	} {
		got := map[string]float64{}
		Pools(got, tc.t)
		for k, w := range tc.want {
			if g, ok := got[k]; !ok || math.Abs(g-w) > 1e-9 {
				t.Errorf("%s: %s = %v (present %v), want %v", name, k, g, ok, w)
			}
		}
		if _, ok := got["pool:pgbouncer/pgbouncer:cl_waiting"]; ok {
			t.Errorf("%s: the admin database was counted", name)
		}
	}
}

func TestStatsDeltas(t *testing.T) {
	// 1.23 adds total_server_assignment_count after database: by name,
	// the position does not matter.
	cols := []string{"database", "total_server_assignment_count", "total_xact_count", "total_query_count",
		"total_received", "total_sent", "total_xact_time", "total_query_time", "total_wait_time"}
	prev := Stats(Table{Cols: cols, Rows: [][]string{
		{"app", "5", "10", "20", "0", "0", "1000", "800", "500"},
		{"pgbouncer", "0", "1", "1", "0", "0", "0", "0", "0"},
	}})
	cur := Stats(Table{Cols: cols, Rows: [][]string{
		{"app", "9", "14", "30", "0", "0", "3000", "1800", "4500"},
		{"new", "0", "1", "1", "0", "0", "10", "10", "0"},
		{"pgbouncer", "0", "9", "9", "0", "0", "0", "0", "0"},
	}})
	got := map[string]float64{}
	StatsDeltas(got, cur, prev)
	want := map[string]float64{"xact_count": 5, "query_count": 11, "xact_time_us": 2010, "query_time_us": 1010, "wait_time_us": 4000, "avg_wait_us": 800}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %v, want %v", k, got[k], w)
		}
	}
	none := map[string]float64{}
	StatsDeltas(none, prev, prev)
	if none["avg_wait_us"] != 0 || none["xact_count"] != 0 {
		t.Errorf("no traffic: %v", none)
	}
}

func TestConfig(t *testing.T) {
	tab := Table{Cols: []string{"key", "value", "default", "changeable"}, Rows: [][]string{
		{"default_pool_size", "2", "20", "yes"},
		{"reserve_pool_size", "0", "0", "yes"},
		{"max_client_conn", "100", "100", "yes"},
		{"query_wait_timeout", "5", "120", "yes"},
		{"pool_mode", "transaction", "session", "yes"},
	}}
	v, info := map[string]float64{}, map[string]string{}
	Config(v, info, tab)
	if v["default_pool_size"] != 2 || v["max_client_conn"] != 100 || v["query_wait_timeout_s"] != 5 || info["pool_mode"] != "transaction" {
		t.Errorf("Config = %v %v", v, info)
	}
}

func TestParseSeconds(t *testing.T) {
	for in, want := range map[string]float64{"120": 120, "0.5": 0.5, "0": 0, "5s": 5, "250ms": 0.25, "2min": 120, " 3 ": 3} {
		if got, ok := ParseSeconds(in); !ok || math.Abs(got-want) > 1e-12 {
			t.Errorf("ParseSeconds(%q) = %v, %v; want %v", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "abc", "5 parsecs", "NaN", "1e999"} {
		if got, ok := ParseSeconds(in); ok {
			t.Errorf("ParseSeconds(%q) = %v, want failure", in, got)
		}
	}
}

func FuzzParseSeconds(f *testing.F) {
	for _, s := range []string{"120", "0.5", "250ms", "2min", "1h", "-1", "1.5.5", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if v, ok := ParseSeconds(s); ok && (math.IsNaN(v) || math.IsInf(v, 0)) {
			t.Errorf("ParseSeconds(%q) = %v", s, v)
		}
	})
}

// FuzzPools feeds one SHOW POOLS row of arbitrary text: every value must
// come out finite.
func FuzzPools(f *testing.F) {
	for _, r := range pools118.Rows {
		f.Add(r[0], r[1], r[3], r[13], r[14])
	}
	f.Fuzz(func(t *testing.T, db, user, waiting, maxwait, maxwaitUS string) {
		tab := Table{Cols: pools118.Cols, Rows: [][]string{{db, user, "1", waiting, "", "", "1", "", "", "0", "0", "0", "0", maxwait, maxwaitUS, "session"}}}
		v := map[string]float64{}
		Pools(v, tab)
		for k, x := range v {
			if math.IsNaN(x) || math.IsInf(x, 0) {
				t.Errorf("%s = %v", k, x)
			}
		}
	})
}
