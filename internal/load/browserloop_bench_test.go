package load

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/evloop"
)

// BenchmarkLoopLoginFlow is the client's own work for bench-peers' login
// flow (GET the form, POST it with its CSRF token, GET the dashboard) on
// the event loop, without the loop's system calls: the driver builds each
// request and takes canned responses as the loop would hand them over.
// It is the user-space side of the flow's CPU, steadier to compare two
// versions with than a whole run's, which the host's system-call cost sways.
func BenchmarkLoopLoginFlow(b *testing.B) {
	dir := b.TempDir()
	users := filepath.Join(dir, "users.csv")
	if err := os.WriteFile(users, []byte("username,password\nbench,bench\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	yml := fmt.Sprintf(`target: http://127.0.0.1:18095/
load: {users: 1, duration: 1h}
users_file: %s
user_assignment: shared
tasks:
  - name: login flow
    steps:
      - {name: "GET login", get: /accounts/login/}
      - name: "POST login"
        submit_form: {fields: {login: "{{user.username}}", password: "{{user.password}}"}}
        expect: {status: [302], not_login_page: true}
      - {name: "GET dashboard", get: /dashboard/}
`, users)
	path := filepath.Join(dir, "s.yaml")
	if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
		b.Fatal(err)
	}
	sc, err := ReadScenario(path)
	if err != nil {
		b.Fatal(err)
	}
	p, err := sc.Compile()
	if err != nil {
		b.Fatal(err)
	}
	e := New(p)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d := &browserLoop{e: e, g: loops{nil}, ctx: ctx, dests: map[string]*evloop.Dest{"127.0.0.1:18095": nil}}
	d.noTransport = nil
	const token = "c2092893afe07b893eb4fb64e1f4ce5b"
	loginPage := []byte(`<!doctype html><html><head><title>Sign In</title></head><body>
<h1>Sign In</h1>
<form class="login" method="post" action="/accounts/login/">
<input type="hidden" name="csrfmiddlewaretoken" value="` + token + `">

<p><label for="id_login">Login:</label> <input type="text" name="login" id="id_login" required></p>
<p><label for="id_password">Password:</label> <input type="password" name="password" id="id_password" required></p>
<input type="hidden" name="next" value="/dashboard/">
<button type="submit">Sign In</button>
</form></body></html>`)
	dashboard := []byte(strings.Repeat("<p>dashboard</p>\n", 20))
	type field struct{ name, value []byte }
	f := func(n, v string) field { return field{[]byte(n), []byte(v)} }
	responses := []struct {
		status int
		fields []field
		body   []byte
	}{
		{200, []field{f("Content-Type", "text/html; charset=utf-8"), f("Set-Cookie", "csrftoken="+token+"; Path=/; SameSite=Lax"),
			f("Date", "Mon, 07 Dec 2026 09:22:00 GMT"), f("Content-Length", fmt.Sprint(len(loginPage)))}, loginPage},
		{302, []field{f("Location", "/dashboard/"), f("Set-Cookie", "sessionid=0123456789abcdef0123456789abcdef; Path=/; HttpOnly; SameSite=Lax"),
			f("Date", "Mon, 07 Dec 2026 09:22:00 GMT"), f("Content-Length", "0")}, nil},
		{200, []field{f("Content-Type", "text/html; charset=utf-8"), f("Date", "Mon, 07 Dec 2026 09:22:00 GMT"),
			f("Content-Length", fmt.Sprint(len(dashboard)))}, dashboard},
	}
	var sent int
	b.ReportAllocs()
	for b.Loop() {
		for _, r := range responses {
			req, _, pause := d.Next(1, false)
			if req == nil {
				b.Fatalf("no request (pause %v)", pause)
			}
			sent += len(req)
			for _, fl := range r.fields {
				d.Field(1, fl.name, fl.value)
			}
			if len(r.body) > 0 {
				d.Body(1, r.body)
			}
			now := time.Now()
			if hop, _ := d.Done(evloop.Result{User: 1, Status: r.status, Start: now, Latency: time.Millisecond, Reused: true}); hop != nil {
				b.Fatal("a hop: the POST's 302 is the step's expected answer")
			}
		}
		for _, res := range d.batch {
			if res.Outcome != stampede.OK {
				b.Fatalf("%s: %s %q", res.Name, res.Outcome, res.Reason)
			}
		}
		clear(d.batch)
		d.batch = d.batch[:0]
	}
	b.ReportMetric(float64(sent)/float64(b.N), "wire-B/flow")
}
