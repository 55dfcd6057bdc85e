package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stampede-load/stampede/internal/live"
	"github.com/stampede-load/stampede/internal/load"
	"github.com/stampede-load/stampede/internal/runner"
)

// TestUIFlag: --ui alone, --ui=ADDR and --ui ADDR, before or after the
// scenario file, and a scenario that only looks like an address.
func TestUIFlag(t *testing.T) {
	dir := t.TempDir()
	odd := filepath.Join(dir, "host:1") // a file whose name reads as HOST:PORT
	if err := os.WriteFile(odd, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args     []string
		addr     string
		pos      []string
		readOnly bool
	}{
		{args: []string{"--ui", "s.yaml"}, addr: live.DefaultAddr, pos: []string{"s.yaml"}},
		{args: []string{"s.yaml", "--ui"}, addr: live.DefaultAddr, pos: []string{"s.yaml"}},
		{args: []string{"--ui", "0.0.0.0:9000", "s.yaml"}, addr: "0.0.0.0:9000", pos: []string{"s.yaml"}},
		{args: []string{"s.yaml", "--ui", ":9000"}, addr: ":9000", pos: []string{"s.yaml"}},
		{args: []string{"--ui=127.0.0.1:0", "--ui-readonly", "s.yaml"}, addr: "127.0.0.1:0", pos: []string{"s.yaml"}, readOnly: true},
		{args: []string{"-ui", "[::1]:8089", "s.yaml"}, addr: "[::1]:8089", pos: []string{"s.yaml"}},
		{args: []string{"--ui", odd}, addr: live.DefaultAddr, pos: []string{odd}},
		{args: []string{"s.yaml"}, addr: "", pos: []string{"s.yaml"}},
	} {
		fs := flag.NewFlagSet("run", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		var f runFlags
		f.register(fs)
		pos, err := parseAnyOrder(fs, uiArgs(tc.args))
		if err != nil {
			t.Errorf("%q: %v", tc.args, err)
			continue
		}
		if f.ui.addr != tc.addr || !slices.Equal(pos, tc.pos) || f.ui.readOnly != tc.readOnly {
			t.Errorf("%q: --ui %q, positional %q, read-only %v; want %q %q %v", tc.args, f.ui.addr, pos, f.ui.readOnly, tc.addr, tc.pos, tc.readOnly)
		}
	}
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var f runFlags
	f.register(fs)
	if _, err := parseAnyOrder(fs, uiArgs([]string{"--ui=8089"})); err == nil {
		t.Error("--ui=8089 accepted: want HOST:PORT")
	}
}

func TestMaskUIToken(t *testing.T) {
	got := maskFlag([]string{"stampede", "run", "--ui-token", "abc", "-ui-token=def", "--ui", "x.yaml", "--ui-tokens", "keep"}, "ui-token")
	want := []string{"stampede", "run", "--ui-token", "xxxxx", "-ui-token=xxxxx", "--ui", "x.yaml", "--ui-tokens", "keep"}
	if !slices.Equal(got, want) {
		t.Errorf("maskFlag = %q, want %q", got, want)
	}
}

// TestStartUI: the page's options from the flags: a Control unless
// read-only, a token generated and printed for a non-loopback address,
// none on the loopback, and the flags that need --ui refused without it.
func TestStartUI(t *testing.T) {
	u, _ := url.Parse("http://user:hunter2@app.test/")
	plan := &load.Plan{Target: u, Model: load.Closed, Users: 5, Duration: time.Minute}
	for _, tc := range []struct {
		name     string
		f        uiFlags
		observer bool
		control  bool
		print    *regexp.Regexp
		err      string
	}{
		{name: "loopback", f: uiFlags{addr: "127.0.0.1:0"}, control: true, print: regexp.MustCompile(`^Live page: http://127\.0\.0\.1:\d+/\n$`)},
		{name: "read-only", f: uiFlags{addr: "127.0.0.1:0", readOnly: true}, print: regexp.MustCompile(`\(read-only\)`)},
		{name: "every interface: a token", f: uiFlags{addr: "0.0.0.0:0"}, control: true,
			print: regexp.MustCompile(`Live page: http://[^ ]+:\d+/#token=[0-9a-f]{32}\n.*Authorization: Bearer [0-9a-f]{32}`)},
		{name: "every interface, given token", f: uiFlags{addr: "0.0.0.0:0", token: "given-Secr3t"}, control: true,
			print: regexp.MustCompile(`controls need the --ui-token`)},
		{name: "observer of a split load", f: uiFlags{addr: "127.0.0.1:0"}, observer: true, control: true, print: regexp.MustCompile(`^Live page: `)},
		{name: "read-only without --ui", f: uiFlags{readOnly: true}, err: "go with --ui"},
		{name: "token without --ui", f: uiFlags{token: "t"}, err: "go with --ui"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := runner.Options{Command: []string{"stampede", "run", "--ui-token", tc.f.token}, ObserveOnly: tc.observer}
			var out bytes.Buffer
			ui, err := startUI(&tc.f, plan, &o, &out)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer ui.close(context.Background(), io.Discard)
			if (o.Control != nil) != tc.control {
				t.Errorf("control %v, want %v", o.Control != nil, tc.control)
			}
			if len(o.Observers) != 1 {
				t.Errorf("%d observers, want the page", len(o.Observers))
			}
			if !tc.print.MatchString(out.String()) {
				t.Errorf("printed %q, want %s", out.String(), tc.print)
			}
			_, port, _ := net.SplitHostPort(ui.srv.Addr().String())
			resp, err := http.Get("http://127.0.0.1:" + port + "/api/state")
			if err != nil {
				t.Fatal(err)
			}
			var st live.Message
			err = json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
			if err != nil || st.Run == nil || st.Run.Observer != tc.observer || st.Load.Controls != tc.control || st.Run.Target != "http://user:xxxxx@app.test/" {
				t.Errorf("state: %v %+v %+v", err, st.Run, st.Load)
			}
			if strings.Contains(out.String(), "hunter2") || (tc.f.token != "" && strings.Contains(out.String()+strings.Join(o.Command, " "), tc.f.token)) {
				t.Errorf("a secret is printed or kept: %q %q", out.String(), o.Command)
			}
		})
	}
}
