package postgres

import (
	"strings"
	"testing"
	"time"
)

func TestActivity(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	got := Activity(now, []Backend{
		{PID: 10, State: "idle in transaction", WaitType: "Client", WaitEvent: "ClientRead", XactAge: 12.5, QueryAge: 12.4, Query: "SELECT * FROM auth_user\n  WHERE id = 1 FOR UPDATE"},
		{PID: 11, State: "active", WaitType: "Lock", WaitEvent: "transactionid", BlockedBy: []int32{10}, XactAge: 3, QueryAge: 3, Query: "UPDATE auth_user SET last_login = now() WHERE id = 1"},
		{PID: 12, State: "active", WaitType: "Lock", WaitEvent: "tuple", BlockedBy: []int32{11, 99}, XactAge: 2, QueryAge: 2, Query: "UPDATE auth_user SET last_login = now() WHERE id = 1"},
		{PID: 13, State: "idle", WaitType: "Client", WaitEvent: "ClientRead", XactAge: -1, QueryAge: 40},
		{PID: 14, State: "active", XactAge: 0.1, QueryAge: 0.1, Query: "SELECT 1"},
	})
	want := map[string]float64{
		"backends": 5, "state:active": 3, "state:idle": 1, "state:idle in transaction": 1,
		"state:idle in transaction (aborted)": 0, "wait:Lock": 2, "wait:Lock:transactionid": 1,
		"wait:Lock:tuple": 1, "wait:Client": 2, "wait:LWLock": 0, "wait:IO": 0,
		"blocked": 2, "blockers": 3, "oldest_xact_s": 12.5, "oldest_query_s": 3,
	}
	for k, w := range want {
		if g, ok := got.Values[k]; !ok || g != w {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, w)
		}
	}
	wantInfo := "pid 11 (transactionid) blocked by 10 (idle in transaction, xact 12.5s): UPDATE auth_user SET last_login = now() WHERE id = 1\n" +
		"pid 12 (tuple) blocked by 11 (active, xact 3.0s), 99 (not a client backend): UPDATE auth_user SET last_login = now() WHERE id = 1"
	if got.Info["blocked"] != wantInfo {
		t.Errorf("Info[blocked] =\n%s\nwant\n%s", got.Info["blocked"], wantInfo)
	}
	if got.Source != "postgres" || !got.Time.Equal(now) {
		t.Errorf("source/time = %q %v", got.Source, got.Time)
	}

	idle := Activity(now, nil)
	if idle.Info != nil || idle.Values["backends"] != 0 || idle.Values["blocked"] != 0 {
		t.Errorf("no backends: %+v", idle)
	}
}

func TestOneLine(t *testing.T) {
	if got := oneLine("a\n\t b  c", 10); got != "a b c" {
		t.Errorf("oneLine = %q", got)
	}
	if got := oneLine(strings.Repeat("é", 5), 3); got != "ééé…" {
		t.Errorf("oneLine = %q", got)
	}
}
