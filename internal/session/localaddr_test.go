package session

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"sync"
	"testing"
	"time"
)

// remoteIPs is a server that records the source address of each request.
func remoteIPs(t *testing.T) (*httptest.Server, func() []string) {
	t.Helper()
	var mu sync.Mutex
	var seen []string
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		mu.Lock()
		seen = append(seen, host)
		mu.Unlock()
	}))
	t.Cleanup(ts.Close)
	return ts, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
}

// Both clients dial from the address they are given, a redial too; the
// zero address leaves the choice to the system (127.0.0.1 to loopback).
func TestDialFrom(t *testing.T) {
	ts, seen := remoteIPs(t)
	u, _ := url.Parse(ts.URL + "/")
	for _, tc := range []struct {
		from netip.Addr
		want string
	}{
		{netip.MustParseAddr("127.0.0.3"), "127.0.0.3"},
		{netip.Addr{}, "127.0.0.1"},
	} {
		fc, err := NewFastClient(u, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		fc.BindTo(tc.from)
		b := New(Options{Transport: NewTransportFrom(tc.from, 2, false, nil)})
		before := len(seen())
		for i := 0; i < 2; i++ {
			if st, _, _, err := fc.Get(context.Background()); err != nil || st != 200 {
				t.Fatalf("fast client from %v: %d %v", tc.from, st, err)
			}
			if p, _, err := b.Do(context.Background(), &Request{Method: "GET", URL: u.String()}); err != nil || p.Status != 200 {
				t.Fatalf("browser from %v: %v", tc.from, err)
			}
			fc.Close() // the next Get dials again
		}
		for _, got := range seen()[before:] {
			if got != tc.want {
				t.Errorf("from %v: the server saw %s, want %s", tc.from, got, tc.want)
			}
		}
	}
}

// An address that is not this machine's fails the dial.
func TestDialFromForeignAddress(t *testing.T) {
	ts, _ := remoteIPs(t)
	u, _ := url.Parse(ts.URL + "/")
	fc, err := NewFastClient(u, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	fc.BindTo(netip.MustParseAddr("203.0.113.1")) // TEST-NET-3
	if _, _, _, err := fc.Get(context.Background()); err == nil {
		t.Error("dial from 203.0.113.1 succeeded")
	}
}
