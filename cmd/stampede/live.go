package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/live"
	"github.com/stampede-load/stampede/internal/load"
	"github.com/stampede-load/stampede/internal/runner"
)

// uiLinger is how long the live page stays up after the run while a page
// is still open on it (for its link to report.html); closing the page or
// Ctrl-C ends the wait.
const uiLinger = 5 * time.Minute

// uiFlags are the live page's flags of "stampede run".
type uiFlags struct {
	addr     string // "" without --ui
	readOnly bool
	token    string
}

func (f *uiFlags) register(fs *flag.FlagSet) {
	fs.Var(uiAddr{&f.addr}, "ui", "serve the live page while the run goes, at `ADDR` (optional: --ui alone serves "+live.DefaultAddr+"): charts, endpoint table, log evidence, the diagnosis so far, and controls to change the load or stop the run (see docs/live.md)")
	fs.BoolVar(&f.readOnly, "ui-readonly", false, "the live page without its controls")
	fs.StringVar(&f.token, "ui-token", "", "Bearer token the live page's controls require (default: none on a loopback address, a random one printed at start otherwise)")
}

// uiAddr is --ui: a flag that may stand alone (the default address) or
// take an address (--ui=ADDR, or --ui ADDR through uiArgs).
type uiAddr struct{ p *string }

func (u uiAddr) IsBoolFlag() bool { return true }

func (u uiAddr) String() string {
	if u.p == nil {
		return ""
	}
	return *u.p
}

func (u uiAddr) Set(v string) error {
	switch v {
	case "true":
		*u.p = live.DefaultAddr
		return nil
	case "false":
		*u.p = ""
		return nil
	}
	if !isAddr(v) {
		return fmt.Errorf("want HOST:PORT, e.g. %s or 0.0.0.0:8089", live.DefaultAddr)
	}
	*u.p = v
	return nil
}

// isAddr reports whether v reads as HOST:PORT (HOST may be empty).
func isAddr(v string) bool {
	_, port, err := net.SplitHostPort(v)
	if err != nil {
		return false
	}
	n, err := strconv.Atoi(port)
	return err == nil && n >= 0 && n <= 65535
}

// uiArgs turns "--ui ADDR" into "--ui=ADDR": the flag package reads the
// word after a flag that may stand alone as a positional argument. A
// following word is taken as the address only when it reads as HOST:PORT
// and is not a file (the scenario).
func uiArgs(args []string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(out, args[i:]...)
		}
		if (a == "--ui" || a == "-ui") && i+1 < len(args) && isAddr(args[i+1]) {
			if _, err := os.Stat(args[i+1]); err != nil {
				out = append(out, a+"="+args[i+1])
				i++
				continue
			}
		}
		out = append(out, a)
	}
	return out
}

// liveUI is the live page of a run, once started.
type liveUI struct {
	srv *live.Server
}

// metricsSource is what the live page takes from the metrics exporter
// among the run's observers (cmd/stampede/metricsout.go adds it): its
// /metrics handler, and the findings of the diagnosis so far.
type metricsSource interface {
	Handler() http.Handler
}

type findingsSink interface {
	SetFindings([]stampede.Finding)
}

// startUI starts the live page when --ui asks for one: it gives the run a
// Control (unless --ui-readonly) and the page as an observer, prints the
// page's URL and returns it; nil without --ui.
func startUI(f *uiFlags, plan *load.Plan, o *runner.Options, stdout io.Writer) (*liveUI, error) {
	if f.addr == "" {
		if f.readOnly || f.token != "" {
			return nil, withHint(fmt.Errorf("run: --ui-readonly and --ui-token go with --ui"), "stampede run --ui ... or --ui 0.0.0.0:8089 --ui-token TOKEN")
		}
		return nil, nil
	}
	lo := live.Options{Addr: f.addr, ReadOnly: f.readOnly, Token: f.token, Dir: o.Dir,
		NoDiagnose: o.NoDiagnose || o.ObserveOnly,
		Run: live.RunFacts{Target: plan.Target.Redacted(), Model: plan.Model.String(), Duration: plan.Duration,
			Observer: o.ObserveOnly, StartAt: o.StartAt}}
	if plan.Segment.Count > 0 {
		lo.Run.Segment = plan.Segment.String()
	}
	if o.ObserveOnly {
		lo.Run.Model = ""
	}
	generated := false
	if !f.readOnly {
		lo.Control = runner.NewControl()
		if lo.Token == "" && !live.Loopback(f.addr) {
			var b [16]byte
			if _, err := rand.Read(b[:]); err != nil {
				return nil, fmt.Errorf("run: --ui: token: %w", err)
			}
			lo.Token, generated = hex.EncodeToString(b[:]), true
		}
	}
	for _, ob := range o.Observers {
		if m, ok := ob.(metricsSource); ok && lo.Metrics == nil {
			lo.Metrics = m.Handler()
		}
		if fs, ok := ob.(findingsSink); ok && lo.Findings == nil {
			lo.Findings = fs.SetFindings
		}
	}
	if f.token != "" {
		// meta.json keeps the command line: not the token.
		o.Command = maskFlag(o.Command, "ui-token")
	}
	srv, err := live.Start(lo)
	if err != nil {
		return nil, withHint(fmt.Errorf("run: --ui %s: %w", f.addr, err), "--ui 127.0.0.1:0 picks a free port")
	}
	o.Control = lo.Control
	o.Observers = append(o.Observers, srv)
	url := pageURL(srv.Addr())
	switch {
	case generated:
		fmt.Fprintf(stdout, "Live page: %s#token=%s\n", url, lo.Token)
		fmt.Fprintf(stdout, "  Its controls need this token (a script sends Authorization: Bearer %s).\n", lo.Token)
	case lo.Token != "":
		fmt.Fprintf(stdout, "Live page: %s (controls need the --ui-token: open %s#token=TOKEN)\n", url, url)
	case f.readOnly:
		fmt.Fprintf(stdout, "Live page: %s (read-only)\n", url)
	default:
		fmt.Fprintf(stdout, "Live page: %s\n", url)
	}
	return &liveUI{srv: srv}, nil
}

// maskFlag replaces the value of flag name (-name V, --name V, --name=V)
// in args with xxxxx.
func maskFlag(args []string, name string) []string {
	out := append([]string(nil), args...)
	for i := 0; i < len(out); i++ {
		a := strings.TrimLeft(out[i], "-")
		if len(a) == len(out[i]) || len(out[i])-len(a) > 2 {
			continue
		}
		switch {
		case a == name && i+1 < len(out):
			out[i+1] = "xxxxx"
			i++
		case strings.HasPrefix(a, name+"="):
			out[i] = out[i][:len(out[i])-len(a)] + name + "=xxxxx"
		}
	}
	return out
}

// pageURL returns the URL to print for a listener's address: this host's
// name when it listens on every interface.
func pageURL(a net.Addr) string {
	host, port, _ := net.SplitHostPort(a.String())
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "localhost"
		if h, err := os.Hostname(); err == nil && h != "" {
			host = h
		}
	}
	return "http://" + net.JoinHostPort(host, port) + "/"
}

// close keeps the page up while one is still open on it (so that its
// link to report.html works), at most uiLinger or until ctx ends (Ctrl-C),
// then stops it.
func (u *liveUI) close(ctx context.Context, stdout io.Writer) {
	if u == nil {
		return
	}
	if ctx.Err() == nil && u.srv.Pages() > 0 {
		fmt.Fprintf(stdout, "Live page: still at %s while it is open (at most %s; Ctrl-C to exit now).\n", pageURL(u.srv.Addr()), uiLinger)
		u.srv.Linger(ctx, uiLinger)
	}
	_ = u.srv.Close()
}
