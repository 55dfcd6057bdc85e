package load

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"time"

	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/secret"
	"github.com/stampede-load/stampede/internal/session"
)

// Trace is one step as RunOnce ran it: its result (as a run would record
// it), every request it sent (a redirect is a second request), and the
// page it got.
type Trace struct {
	// Task is the task's index in the plan, -1 for on_start; Index is the
	// step's index in it.
	Task, Index int
	Step        *Step
	Result      stampede.Result
	// Sent are the requests as they went out, redirects included, with
	// their responses' status and headers; empty when the step sent
	// nothing (a submit_form that found no form).
	Sent []Exchange
	// Page is the final response (its body copied); zero when nothing was
	// sent.
	Page session.Page
}

// Exchange is one request as sent and the status and headers of its
// response.
type Exchange struct {
	Method string
	URL    string
	Header http.Header
	Body   []byte
	Status int
	// ResponseHeader is the response's header (Location, Set-Cookie).
	ResponseHeader http.Header
}

// RunOnce runs the plan once as virtual user n (from 1; its users-file row
// as in a run): on_start, then every task in order, each step as a run
// makes it, and calls fn after each step; it stops when fn returns false
// or a step fails. It is stampede run --check's and stampede har --check's
// way through a scenario.
func (p *Plan) RunOnce(ctx context.Context, n int, fn func(*Trace) bool) error {
	e := New(p)
	tr := session.NewUserTransport(session.UserTransportOptions{Hosts: p.Hosts, Insecure: p.Insecure, IdleTimeout: p.ConnIdleTimeout()})
	defer tr.CloseIdleConnections()
	out := make(chan stampede.Result, 1)
	// The user as the engine makes it, through a transport that records
	// what it sends (and without the quick form's lean client: RunOnce
	// looks at every page).
	v := &vu{e: e, n: n, out: out, rng: rand.New(rand.NewPCG(uint64(n), 1))}
	rec := &exchanges{rt: tr}
	v.b = session.New(session.Options{Transport: rec, Timeout: p.Timeout,
		CookieRefused: func(r session.CookieRefusal) { e.cookies.add(&r, v.endpoint) }})
	v.vars.row, v.vars.header, v.vars.n = p.row(n), p.Header, n
	run := func(task, i int, s *Step) bool {
		rec.list = nil
		ok := v.step(ctx, s, time.Time{})
		t := &Trace{Task: task, Index: i, Step: s, Sent: rec.list}
		select {
		case t.Result = <-out:
		default:
			return false // cut off by ctx: nothing was recorded
		}
		if len(rec.list) > 0 && t.Result.Status != 0 {
			// The page the step got (Last is the browser's, reused by the
			// next request: copied).
			t.Page = v.b.Last
			t.Page.Body = bytes.Clone(v.b.Last.Body)
		}
		return fn(t) && ok
	}
	for i, s := range p.OnStart {
		if !run(-1, i, s) {
			return ctx.Err()
		}
	}
	v.started = true
	if p.AuthOnly {
		return nil
	}
	for ti, task := range p.Tasks {
		for i, s := range task.Steps {
			if !run(ti, i, s) {
				return ctx.Err()
			}
		}
	}
	return nil
}

// Mask masks a text with the plan's secrets and by pattern, as a run masks
// its failure reasons.
func (p *Plan) Mask(s string) string {
	return secret.New(p.Secrets()...).Mask(s)
}

// exchanges records the requests a browser sends.
type exchanges struct {
	rt   http.RoundTripper
	list []Exchange
}

func (x *exchanges) RoundTrip(req *http.Request) (*http.Response, error) {
	ex := Exchange{Method: req.Method, URL: req.URL.String(), Header: req.Header.Clone()}
	if req.GetBody != nil {
		if rc, err := req.GetBody(); err == nil {
			ex.Body, _ = io.ReadAll(rc)
			_ = rc.Close()
		}
	}
	resp, err := x.rt.RoundTrip(req)
	if err == nil {
		ex.Status, ex.ResponseHeader = resp.StatusCode, resp.Header.Clone()
	}
	x.list = append(x.list, ex)
	return resp, err
}
