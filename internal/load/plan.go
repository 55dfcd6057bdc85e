package load

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/secret"
	"github.com/stampede-load/stampede/internal/session"
)

// Model is the load model.
type Model int

// The load models.
const (
	// Closed runs a fixed number of virtual users, each looping over tasks
	// with think time between them (Locust's and k6's "constant VUs").
	Closed Model = iota
	// Open starts flows at a fixed arrival rate whatever the server does
	// (k6's "constant arrival rate"); a start that finds no free user is
	// counted as dropped, never silently delayed.
	Open
)

// String names the model.
func (m Model) String() string {
	if m == Open {
		return "open"
	}
	return "closed"
}

// Assignment says how virtual users map to rows of the users file.
type Assignment string

// The assignments.
const (
	Unique     Assignment = "unique"      // user i takes row i; more users than rows is an error
	Shared     Assignment = "shared"      // every user takes row 1
	RoundRobin Assignment = "round-robin" // user i takes row (i-1) mod rows
)

// Plan is a compiled scenario, ready to run.
type Plan struct {
	Target      *url.URL
	Model       Model
	Users       int     // closed: users; open: max users
	SpawnRate   float64 // closed: users started per second
	ArrivalRate float64 // open: flows started per second
	Duration    time.Duration
	ThinkMin    time.Duration
	ThinkMax    time.Duration
	Timeout     time.Duration
	// IdleTimeout closes a user's kept-alive connection idle this long
	// (idle_timeout, --idle-timeout); 0 means DefaultIdleTimeout, below 0
	// never.
	IdleTimeout time.Duration
	Insecure    bool
	// Hosts maps host names to the addresses dialled instead.
	Hosts   session.Hosts
	OnStart []*Step
	Tasks   []*Task
	// Quick marks the quick form (--url): plain GETs in a loop, bodies
	// counted and discarded like wrk and hey do.
	Quick bool

	Header     []string // users file header
	Rows       [][]string
	Assignment Assignment
	// AuthOnly runs on_start only (--auth-only).
	AuthOnly bool
	// NoRelogin keeps a user whose session was lost browsing logged out
	// instead of logging in again (scenario relogin: false).
	NoRelogin bool
	// LocalIPs, when not nil, are the source addresses the users dial
	// from, one each, in turn (load.local_ips, --local-ips).
	LocalIPs *LocalIPs
	// Segment is the part of a split load this plan runs (ForSegment);
	// zero for the whole load. Users, SpawnRate and ArrivalRate are then
	// the segment's own.
	Segment Segment

	totalWeight int
	wholeRate   float64  // a segment's whole plan's spawn or arrival rate
	secrets     []string // literal secrets of the scenario (see Secrets)
}

// Task is a compiled weighted task.
type Task struct {
	Name   string
	Weight int
	Steps  []*Step
	cum    int
}

// Step is a compiled step.
type Step struct {
	Name        string
	Method      string
	URL         tmpl // empty for submit_form
	SubmitForm  bool
	Selector    string
	Fields      map[string]tmpl
	Form        map[string]tmpl
	Body        tmpl
	ContentType string
	Headers     map[string]tmpl
	Extract     map[string]*session.Extractor
	Status      []int // nil: 2xx and 3xx
	NotLogin    bool
	Contains    string
	NotContains string
	NotRedirect string
	NoRedirect  bool
	pos         string
	// abs is URL resolved against absBase (the plan's Target when the step
	// was compiled), when URL has no variables; absText its text.
	abs     *url.URL
	absText string
	absBase *url.URL
}

// Compile validates the scenario and builds its plan. dir resolves relative
// paths (the users file) and defaults to the scenario file's directory.
func (sc *Scenario) Compile() (*Plan, error) {
	p := &Plan{Assignment: Unique}
	if sc.Target == "" {
		return nil, fmt.Errorf("%s: target: required (the base URL, e.g. http://127.0.0.1:8000)", sc.Pos("$"))
	}
	u, err := url.Parse(sc.Target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// The URL is quoted masked: an error goes to the terminal.
		return nil, fmt.Errorf("%s: target: %q is not an http(s) URL", sc.Pos("$.target"), secret.Mask(stampede.Redact(sc.Target)))
	}
	p.Target = u
	p.Insecure = sc.Insecure
	p.NoRelogin = sc.Relogin != nil && !*sc.Relogin
	for name, addr := range sc.Hosts {
		if net.ParseIP(addr) == nil {
			return nil, fmt.Errorf("%s: hosts: %q: want an IP address for %s", sc.Pos("$.hosts."+name), addr, name)
		}
		if p.Hosts == nil {
			p.Hosts = session.Hosts{}
		}
		p.Hosts[name] = addr
	}
	l := sc.Load
	p.Duration = time.Minute // a duration is always in force
	if l.Duration != "" {
		if p.Duration, err = parseDuration(l.Duration); err != nil || p.Duration <= 0 {
			return nil, fmt.Errorf("%s: load.duration: %q: want a positive duration such as 60s", sc.Pos("$.load.duration"), l.Duration)
		}
	}
	if l.LocalIPs != "" {
		if p.LocalIPs, err = ParseLocalIPs(l.LocalIPs); err != nil {
			return nil, fmt.Errorf("%s: load.local_ips: %v", sc.Pos("$.load.local_ips"), err)
		}
	}
	if l.ArrivalRate != "" {
		p.Model = Open
		if p.ArrivalRate, err = ParseRate(l.ArrivalRate); err != nil {
			return nil, fmt.Errorf("%s: load.arrival_rate: %v", sc.Pos("$.load.arrival_rate"), err)
		}
		if l.Users != 0 {
			return nil, fmt.Errorf("%s: load.users: not used with arrival_rate (the open model); use max_users", sc.Pos("$.load.users"))
		}
		p.Users = l.MaxUsers
		if p.Users <= 0 {
			p.Users = 1000
		}
	} else {
		p.Users, p.SpawnRate = l.Users, l.SpawnRate
		if p.Users <= 0 {
			return nil, fmt.Errorf("%s: load.users: want at least 1 virtual user (or arrival_rate for the open model)", sc.Pos("$.load"))
		}
		if l.MaxUsers != 0 {
			return nil, fmt.Errorf("%s: load.max_users: only used with arrival_rate", sc.Pos("$.load.max_users"))
		}
		if p.SpawnRate < 0 {
			return nil, fmt.Errorf("%s: load.spawn_rate: must not be negative", sc.Pos("$.load.spawn_rate"))
		}
		if p.SpawnRate == 0 {
			p.SpawnRate = float64(p.Users) // all at once, within a second
		}
	}
	if p.ThinkMin, p.ThinkMax, err = ParseThink(sc.Think); err != nil {
		return nil, fmt.Errorf("%s: %v", sc.Pos("$.think"), err)
	}
	if sc.IdleTimeout != "" {
		if p.IdleTimeout, err = ParseIdleTimeout(sc.IdleTimeout); err != nil {
			return nil, fmt.Errorf("%s: idle_timeout: %v", sc.Pos("$.idle_timeout"), err)
		}
	}
	p.Timeout = 60 * time.Second
	if sc.Timeout != "" {
		if p.Timeout, err = parseDuration(sc.Timeout); err != nil || p.Timeout <= 0 {
			return nil, fmt.Errorf("%s: timeout: %q: want a positive duration", sc.Pos("$.timeout"), sc.Timeout)
		}
	}
	switch Assignment(sc.UserAssignment) {
	case "", Unique:
	case Shared, RoundRobin:
		p.Assignment = Assignment(sc.UserAssignment)
	default:
		return nil, fmt.Errorf("%s: user_assignment: %q: want unique, shared or round-robin", sc.Pos("$.user_assignment"), sc.UserAssignment)
	}
	if sc.UsersFile != "" {
		path := sc.UsersFile
		if !filepath.IsAbs(path) && sc.file != "" {
			path = filepath.Join(filepath.Dir(sc.file), path)
		}
		if p.Header, p.Rows, err = readUsers(path); err != nil {
			return nil, fmt.Errorf("%s: users_file: %w", sc.Pos("$.users_file"), err)
		}
	}
	global := sc.Headers
	for i := range sc.OnStart {
		s, err := sc.compileStep(&sc.OnStart[i], fmt.Sprintf("$.on_start[%d]", i), global)
		if err != nil {
			return nil, err
		}
		p.OnStart = append(p.OnStart, s)
	}
	for i := range sc.Tasks {
		ts := &sc.Tasks[i]
		path := fmt.Sprintf("$.tasks[%d]", i)
		t := &Task{Name: ts.Name, Weight: ts.Weight}
		if t.Weight == 0 {
			t.Weight = 1
		}
		if t.Weight < 0 {
			return nil, fmt.Errorf("%s: weight: must be positive", sc.Pos(path+".weight"))
		}
		if len(ts.Steps) == 0 {
			return nil, fmt.Errorf("%s: task %q has no steps", sc.Pos(path), ts.Name)
		}
		for j := range ts.Steps {
			s, err := sc.compileStep(&ts.Steps[j], fmt.Sprintf("%s.steps[%d]", path, j), global)
			if err != nil {
				return nil, err
			}
			t.Steps = append(t.Steps, s)
		}
		p.totalWeight += t.Weight
		t.cum = p.totalWeight
		p.Tasks = append(p.Tasks, t)
	}
	if len(p.Tasks) == 0 && len(p.OnStart) == 0 {
		return nil, fmt.Errorf("%s: the scenario has neither on_start nor tasks: nothing to run", sc.Pos("$"))
	}
	if err := p.checkTemplates(sc); err != nil {
		return nil, err
	}
	p.secrets = scenarioSecrets(sc)
	for _, s := range p.allSteps() {
		// A URL without variables is resolved once, not a request.
		if len(s.URL) == 1 && s.URL[0].lit && !s.SubmitForm {
			if u, err := p.Target.Parse(s.URL[0].s); err == nil {
				s.abs, s.absText, s.absBase = u, u.String(), p.Target
			}
		}
	}
	if p.Rows != nil && p.Assignment == Unique && p.Users > len(p.Rows) {
		return nil, fmt.Errorf("%s: users_file has %d rows, fewer than the %d virtual users that unique assignment needs (add rows, or set user_assignment: round-robin)", sc.Pos("$.users_file"), len(p.Rows), p.Users)
	}
	return p, nil
}

func (sc *Scenario) compileStep(ss *StepSpec, path string, global map[string]string) (*Step, error) {
	// pos names the step in errors: "s.yaml:12:7: tasks[0].steps[1]".
	s := &Step{Name: ss.Name, pos: sc.Pos(path) + ": " + strings.TrimPrefix(path, "$.")}
	var target string
	n := 0
	for _, m := range []struct{ method, url string }{{"GET", ss.Get}, {"POST", ss.Post}, {"PUT", ss.Put}, {"PATCH", ss.Patch}, {"DELETE", ss.Delete}} {
		if m.url != "" {
			s.Method, target = m.method, m.url
			n++
		}
	}
	if ss.SubmitForm != nil {
		n++
		s.SubmitForm = true
		s.Method = "POST"
		s.Selector = ss.SubmitForm.Selector
		s.Fields = map[string]tmpl{}
		for k, v := range ss.SubmitForm.Fields {
			s.Fields[k] = parseTmpl(v)
		}
	}
	if n != 1 {
		return nil, fmt.Errorf("%s: a step needs exactly one of get, post, put, patch, delete, submit_form (found %d)", s.pos, n)
	}
	if !s.SubmitForm {
		s.URL = parseTmpl(target)
	}
	if s.Name == "" {
		if s.SubmitForm {
			s.Name = "submit_form"
		} else {
			s.Name = target
		}
	}
	bodies := 0
	if len(ss.Form) > 0 {
		bodies++
		s.Form = map[string]tmpl{}
		for k, v := range ss.Form {
			s.Form[k] = parseTmpl(v)
		}
		s.ContentType = "application/x-www-form-urlencoded"
	}
	if ss.JSON != nil {
		bodies++
		b, err := json.Marshal(ss.JSON)
		if err != nil {
			return nil, fmt.Errorf("%s: json: %v", sc.Pos(path+".json"), err)
		}
		s.Body = parseTmpl(string(b))
		s.ContentType = "application/json"
	}
	if ss.Body != "" {
		bodies++
		s.Body = parseTmpl(ss.Body)
	}
	if bodies > 1 {
		return nil, fmt.Errorf("%s: use one of form, json, body", s.pos)
	}
	if bodies > 0 && s.SubmitForm {
		return nil, fmt.Errorf("%s: submit_form takes its fields from submit_form.fields, not form/json/body", s.pos)
	}
	s.Headers = map[string]tmpl{}
	for k, v := range global {
		s.Headers[http.CanonicalHeaderKey(k)] = parseTmpl(v)
	}
	for k, v := range ss.Headers {
		s.Headers[http.CanonicalHeaderKey(k)] = parseTmpl(v)
	}
	if ct, ok := s.Headers["Content-Type"]; ok && len(ct) == 1 && ct[0].lit {
		s.ContentType = ct[0].s
	}
	if len(ss.Extract) > 0 {
		s.Extract = map[string]*session.Extractor{}
		names := make([]string, 0, len(ss.Extract))
		for k := range ss.Extract {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			e := ss.Extract[k]
			ep := sc.Pos(path + ".extract." + k)
			x := &session.Extractor{Cookie: e.Cookie, JSON: e.JSON, CSS: e.CSS, Attr: e.Attr, Header: e.Header}
			srcs := 0
			for _, v := range []string{e.Regex, e.Cookie, e.JSON, e.CSS, e.Header} {
				if v != "" {
					srcs++
				}
			}
			if srcs != 1 {
				return nil, fmt.Errorf("%s: extract %s: want exactly one of regex, cookie, json, css, header", ep, k)
			}
			switch e.Decode {
			case "":
			case "url":
				x.URLDecode = true
			default:
				return nil, fmt.Errorf("%s: extract %s: decode %q: want url", ep, k, e.Decode)
			}
			if e.Regex != "" {
				re, err := regexp.Compile(e.Regex)
				if err != nil {
					return nil, fmt.Errorf("%s: extract %s: regex: %v", ep, k, err)
				}
				x.Regex = re
			}
			if strings.HasPrefix(k, "user.") {
				return nil, fmt.Errorf("%s: extract %s: names starting with user. are the users file's columns", ep, k)
			}
			s.Extract[k] = x
		}
	}
	ex := ss.Expect
	for _, c := range ex.Status {
		if c < 100 || c > 599 {
			return nil, fmt.Errorf("%s: expect.status: %d is not an HTTP status", sc.Pos(path+".expect.status"), c)
		}
	}
	s.Status = ex.Status
	s.NotLogin, s.Contains, s.NotContains, s.NotRedirect = ex.NotLoginPage, ex.BodyContains, ex.BodyNotContains, ex.RedirectNotTo
	// A step that expects a 3xx wants to see it, so it does not follow
	// redirects unless it says so.
	for _, c := range s.Status {
		if c >= 300 && c < 400 {
			s.NoRedirect = true
		}
	}
	if ss.FollowRedirects != nil {
		s.NoRedirect = !*ss.FollowRedirects
	}
	return s, nil
}

// checkTemplates verifies that every {{user.COLUMN}} names a column of the
// users file, and that every other variable is extracted by some step.
func (p *Plan) checkTemplates(sc *Scenario) error {
	vars := map[string]bool{"vu": true}
	for _, s := range p.allSteps() {
		for k := range s.Extract {
			vars[k] = true
		}
	}
	cols := map[string]bool{}
	for _, h := range p.Header {
		cols[h] = true
	}
	for _, s := range p.allSteps() {
		ts := []tmpl{s.URL, s.Body}
		for _, m := range []map[string]tmpl{s.Fields, s.Form, s.Headers} {
			keys := make([]string, 0, len(m))
			for k := range m {
				keys = append(keys, k)
			}
			sort.Strings(keys) // the same error every time
			for _, k := range keys {
				ts = append(ts, m[k])
			}
		}
		for _, t := range ts {
			for _, seg := range t {
				if seg.lit {
					continue
				}
				if col, ok := strings.CutPrefix(seg.s, "user."); ok {
					if p.Header == nil {
						return fmt.Errorf("%s: {{%s}} needs a users_file", s.pos, seg.s)
					}
					if !cols[col] {
						return fmt.Errorf("%s: {{%s}}: the users file has no column %q (columns: %s)", s.pos, seg.s, col, strings.Join(p.Header, ", "))
					}
					continue
				}
				if !vars[seg.s] {
					return fmt.Errorf("%s: {{%s}} is neither a users file column (user.NAME) nor extracted by any step", s.pos, seg.s)
				}
			}
		}
	}
	return nil
}

func (p *Plan) allSteps() []*Step {
	steps := append([]*Step(nil), p.OnStart...)
	for _, t := range p.Tasks {
		steps = append(steps, t.Steps...)
	}
	return steps
}

// QuickPlan is the quick form: each of users GETs target in a loop with no
// think time, like wrk and hey.
func QuickPlan(target string, users int, spawnRate float64, d time.Duration) (*Plan, error) {
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--url: %q is not an http(s) URL", secret.Mask(stampede.Redact(target)))
	}
	if users <= 0 {
		return nil, fmt.Errorf("-u: want at least 1 user")
	}
	if d <= 0 {
		d = time.Minute
	}
	if spawnRate <= 0 {
		spawnRate = float64(users)
	}
	path := u.RequestURI()
	s := &Step{Name: path, Method: "GET", URL: parseTmpl(u.String()), Headers: map[string]tmpl{}}
	return &Plan{Target: u, Model: Closed, Users: users, SpawnRate: spawnRate, Duration: d, Timeout: 60 * time.Second,
		Tasks: []*Task{{Name: "GET", Weight: 1, Steps: []*Step{s}, cum: 1}}, totalWeight: 1, Assignment: Unique, Quick: true}, nil
}

func readUsers(path string) ([]string, [][]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	return parseUsers(path, f)
}

// parseUsers reads a users file: a header row, then one row per account,
// every row as wide as the header. Errors name the file and the line (and
// column, for a quoting error). A byte-order mark is skipped, as
// spreadsheets write one.
func parseUsers(name string, rd io.Reader) ([]string, [][]string, error) {
	br := bufio.NewReader(rd)
	if b, err := br.Peek(3); err == nil && string(b) == "\xef\xbb\xbf" {
		_, _ = br.Discard(3)
	}
	r := csv.NewReader(br)
	r.TrimLeadingSpace = true
	header, err := r.Read()
	if err == io.EOF {
		return nil, nil, fmt.Errorf("%s: empty: want a header row such as username,password", name)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	for i, h := range header {
		if h == "" {
			return nil, nil, fmt.Errorf("%s:1: column %d of the header has no name", name, i+1)
		}
		if !utf8.ValidString(h) {
			return nil, nil, fmt.Errorf("%s:1: column %d of the header is not UTF-8 text (is it the right file?)", name, i+1)
		}
	}
	var rows [][]string
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", name, err)
		}
		rows = append(rows, rec)
	}
	if len(rows) == 0 {
		return nil, nil, fmt.Errorf("%s: no rows after the header", name)
	}
	return header, rows, nil
}

// row returns the users-file row of virtual user vu (from 1).
func (p *Plan) row(vu int) []string {
	if len(p.Rows) == 0 {
		return nil
	}
	switch p.Assignment {
	case Shared:
		return p.Rows[0]
	default: // unique (checked at compile time to have enough rows) and round-robin
		return p.Rows[(vu-1)%len(p.Rows)]
	}
}

// LoginSteps names the steps that log in: a submit_form without a
// selector (it picks the form with a password field) or a step checking
// not_login_page.
func (p *Plan) LoginSteps() []string {
	var names []string
	seen := map[string]bool{}
	for _, s := range p.allSteps() {
		if (s.SubmitForm && s.Selector == "") || s.NotLogin {
			if !seen[s.Name] {
				seen[s.Name] = true
				names = append(names, s.Name)
			}
		}
	}
	return names
}

// Accounts is the number of distinct users-file rows the run (or its
// segment) logs in with.
func (p *Plan) Accounts() int {
	switch {
	case len(p.Rows) == 0:
		return 0
	case p.Assignment == Shared:
		return 1
	case !p.Segment.split():
		return min(len(p.Rows), p.Users)
	}
	// A segment's users take rows (global-1) mod rows: count the distinct.
	seen := make(map[int]bool, min(p.Users, len(p.Rows)))
	for j := 0; j < p.Users && len(seen) < len(p.Rows); j++ {
		seen[(p.Segment.global(j)-1)%len(p.Rows)] = true
	}
	return len(seen)
}

// tmpl is a template: literal text and {{variables}}, parsed once.
type tmpl []seg

type seg struct {
	s   string
	lit bool
}

func parseTmpl(s string) tmpl {
	var t tmpl
	for s != "" {
		i := strings.Index(s, "{{")
		if i < 0 {
			t = append(t, seg{s, true})
			break
		}
		j := strings.Index(s[i:], "}}")
		if j < 0 {
			t = append(t, seg{s, true})
			break
		}
		if i > 0 {
			t = append(t, seg{s[:i], true})
		}
		t = append(t, seg{strings.TrimSpace(s[i+2 : i+j]), false})
		s = s[i+j+2:]
	}
	return t
}

// literal returns the template's text up to its first variable.
func (t tmpl) literal() string {
	if len(t) > 0 && t[0].lit {
		return t[0].s
	}
	return ""
}

// render expands the template with the user's variables.
func (t tmpl) render(v *vars) string {
	if len(t) == 1 && t[0].lit {
		return t[0].s
	}
	var b strings.Builder
	for _, sg := range t {
		if sg.lit {
			b.WriteString(sg.s)
		} else {
			b.WriteString(v.get(sg.s))
		}
	}
	return b.String()
}

// Secrets returns the secret values the plan knows, for the run to mask
// wherever they appear (see package secret): the password of the target
// URL, every value of the users file's columns whose name is a secret's
// (password, token, ...), and the literal values the scenario gives to
// form fields, JSON keys, headers and query parameters named so.
func (p *Plan) Secrets() []string {
	var out []string
	if p.Target != nil {
		if pw, ok := p.Target.User.Password(); ok {
			out = append(out, pw)
		}
	}
	for i, h := range p.Header {
		if !secret.IsKey(h) {
			continue
		}
		for _, row := range p.Rows {
			if i < len(row) {
				out = append(out, row[i])
			}
		}
	}
	return append(out, p.secrets...)
}

// scenarioSecrets returns the literal values of the scenario's fields,
// JSON keys, headers and query parameters whose names are secrets'; a
// template ({{user.password}}) names a secret without holding one.
func scenarioSecrets(sc *Scenario) []string {
	var out []string
	lit := func(k, v string) {
		if secret.IsKey(k) && v != "" && !strings.Contains(v, "{{") {
			out = append(out, v)
		}
	}
	var walk func(k string, v any)
	walk = func(k string, v any) {
		switch x := v.(type) {
		case string:
			lit(k, x)
		case map[string]any:
			for kk, vv := range x {
				walk(kk, vv)
			}
		case []any:
			for _, vv := range x {
				walk(k, vv)
			}
		}
	}
	for k, v := range sc.Headers {
		lit(k, v)
	}
	steps := append([]StepSpec(nil), sc.OnStart...)
	for _, t := range sc.Tasks {
		steps = append(steps, t.Steps...)
	}
	for _, s := range steps {
		if s.SubmitForm != nil {
			for k, v := range s.SubmitForm.Fields {
				lit(k, v)
			}
		}
		for _, m := range []map[string]string{s.Form, s.Headers} {
			for k, v := range m {
				lit(k, v)
			}
		}
		walk("", s.JSON)
		for _, raw := range []string{s.Get, s.Post, s.Put, s.Patch, s.Delete} {
			if u, err := url.Parse(raw); err == nil && raw != "" {
				for k, vs := range u.Query() {
					for _, v := range vs {
						lit(k, v)
					}
				}
			}
		}
	}
	return out
}

// DefaultIdleTimeout is how long a user's kept-alive connection may stay
// idle before the user closes it: net/http's IdleConnTimeout, and above
// the keep-alive timeout of most servers (nginx 75 s, Apache 5 s,
// gunicorn 2 s), which close it first.
const DefaultIdleTimeout = 90 * time.Second

// ParseIdleTimeout parses idle_timeout and --idle-timeout: a duration
// ("15s"), or "0" or "never" for a connection kept until the server closes
// it. It returns below 0 for never.
func ParseIdleTimeout(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "0" || s == "never" {
		return -1, nil
	}
	d, err := parseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q: want a positive duration such as 15s, or 0 (never)", s)
	}
	return d, nil
}

// ConnIdleTimeout is the idle timeout in force: IdleTimeout, or
// DefaultIdleTimeout when unset; below 0 never.
func (p *Plan) ConnIdleTimeout() time.Duration {
	if p.IdleTimeout == 0 {
		return DefaultIdleTimeout
	}
	return p.IdleTimeout
}
