package har

import (
	"encoding/base64"
	"fmt"
	"maps"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/stampede-load/stampede/internal/session"
)

// Options configure Convert. The zero value is valid.
type Options struct {
	FilterOptions
	// NoCorrelate freezes every value at its recorded value (but the
	// login's user fields, which still come from the users file): the
	// scenario replays the recording as a naive converter would, and its
	// login fails wherever the server checks a token.
	NoCorrelate bool
	// Target is the scenario's target; "" is the recording's origin.
	Target string
	// UsersFile is the users file the scenario names (users_file), as
	// written in it; "" is "users.csv".
	UsersFile string
	// UsersHeader is the header of an existing users file, whose columns
	// the login's fields are mapped to; nil means username,password.
	UsersHeader []string
	// Source names the recording in the scenario's first comment.
	Source string
}

// Result is the scenario made from a recording, and what was found on the
// way: what was left out, the login, every correlation, and every value
// sent as recorded. No field holds the recorded password or username.
type Result struct {
	// Scenario is the scenario file (YAML).
	Scenario []byte
	// Origin is the recording's target origin.
	Origin string
	// LeftOut and ThirdParty count what was left out (Filtered's).
	LeftOut    map[string]int
	ThirdParty map[string]int
	// Login is the login found, nil when the recording has none.
	Login *Login
	// UsersHeader is the users file's header the scenario needs; nil when
	// it has no login.
	UsersHeader []string
	// Correlations are the values traced to the response that handed
	// them out, in the order first used.
	Correlations []Correlation
	// Unresolved are the values sent as recorded: not traced, made by the
	// page's script, constants, and cookies set by script.
	Unresolved []Unresolved
	// Steps map the scenario's steps to the recording, for --check.
	Steps []StepRecord
	// Think is the scenario's think time ("1s..4.5s").
	Think string
	// Warnings say what the scenario could not do as recorded.
	Warnings []string
}

// Login is the recording's login.
type Login struct {
	// Step is the login's step name ("POST /accounts/login/").
	Step string
	// Fields name the fields templated from the users file:
	// "form field login ← {{user.username}}".
	Fields []string
	// JSON marks a login posted as JSON.
	JSON bool
	// SubmitForm marks a login sent with submit_form.
	SubmitForm bool
}

// Correlation is a value the browser sent back after a response handed it
// out: where from, by what rule, used where.
type Correlation struct {
	// Var is the scenario's variable ("" for a field a submit_form
	// carries from the page's form).
	Var string
	// From is the step whose response carried the value, and FromEntry its
	// entry in the recording.
	From      string
	FromEntry int
	// Rule says what carried it ("hidden input csrfmiddlewaretoken").
	Rule string
	// Extract is the scenario's extract (zero for a carried field).
	Extract Extract
	// UsedIn lists the requests that sent it: "POST /accounts/login/ form
	// field csrfmiddlewaretoken".
	UsedIn []string
	// NotExpressed says why the scenario sends the recorded value though
	// it was traced ("" when it is extracted).
	NotExpressed string
	// Approximate says the extract finds a value of the same kind (the
	// first such link), not the one the recording used.
	Approximate bool
}

// Unresolved is a value a scenario sends as recorded.
type Unresolved struct {
	Step string
	Sent string // "query parameter _" (the value itself is not given)
	// Kind is "not traced", "made by the page" (with Why), "constant" or
	// "cookie set by script".
	Kind string
	Why  string
	// Value is the value when it is short and no secret; "" otherwise.
	Value string
}

// Kinds of Unresolved.
const (
	NotTraced    = "not traced"
	ClientMade   = "made by the page"
	Constant     = "constant"
	ScriptCookie = "cookie set by script"
)

// StepRecord ties a scenario step to the recording.
type StepRecord struct {
	// Task is the task's index, -1 for on_start; Index the step's index in it.
	Task, Index int
	Name        string
	Entry       *Entry
	// Location is where the recorded redirect went ("" for none), with
	// the recorded username templated as the scenario does it.
	Location string
	// Login marks the login step.
	Login bool
	// Sources are where the step's dynamic values came from: "form field
	// csrfmiddlewaretoken: from GET /accounts/login/ (hidden input
	// csrfmiddlewaretoken)", or "...: the recorded value (correlation
	// switched off)".
	Sources []Source
}

// Source is where a sent value came from, for --check's explanations.
type Source struct {
	Sent string // "form field csrfmiddlewaretoken"
	// From is the response that handed it out and the rule
	// ("GET /accounts/login/ (hidden input csrfmiddlewaretoken)"); "" when
	// not traced.
	From string
	// Frozen marks a value sent as recorded.
	Frozen bool
	// Token marks a value named or shaped like a token.
	Token bool
}

type bindKind int

const (
	bindLiteral bindKind = iota // sent as recorded
	bindUser                    // a users file column
	bindVar                     // an extracted variable
	bindCarried                 // carried by submit_form from the page's form
	bindJar                     // a cookie the jar sends
	bindDrop                    // not sent
)

type binding struct {
	kind   bindKind
	text   string // the template that replaces the value (bindUser)
	prefix string // bindVar: the text before the variable ("Bearer ")
	v      *variable
	rename string // send a header under this name instead
	// carriedFrom is the finding of a carried field, for the report.
	carriedFrom *finding
	// inexpr is the finding of a value traced but sent as recorded,
	// because the scenario format cannot take it from there.
	inexpr *finding
	// frozen marks a token sent as recorded: its finding says where a
	// fresh one comes from (a zero finding when none does).
	frozen *finding
	// unres says what a value sent as recorded is (nil for a value bound
	// or carried).
	unres *Unresolved
}

type variable struct {
	name  string // given by write, to the variables used
	base  string // the name it would like
	f     *finding
	value string
	uses  []string // filled by write, from the final bindings
	order int
}

type step struct {
	e          *Entry
	nav        int
	idx        *pageIndex
	sent       []Sent
	binds      []binding
	vars       []*variable
	login      bool
	formPage   *step
	form       *session.Form
	selector   string
	submitForm bool
	unformed   []binding // the bindings before submit_form carried the form's fields
	flow       int
	name       string
	sources    []Source // filled by record
}

type converter struct {
	o        Options
	log      *Log
	f        *Filtered
	steps    []*step
	login    *step
	user     Sent
	pass     Sent
	hasUser  bool
	vars     []*variable
	varKey   map[string]*variable
	varValue map[string]*variable
	names    map[string]bool
	promote  map[*Entry]bool
	res      *Result
	setBy    map[string]bool // cookie names some response set
	cols     [2]string       // users file columns of the username and password
}

// Convert makes a scenario from a recording.
func Convert(l *Log, o Options) (*Result, error) {
	f, err := Filter(l, o.FilterOptions)
	if err != nil {
		return nil, err
	}
	var c *converter
	promote := map[*Entry]bool{}
	for round := 0; round < 2; round++ {
		kept := f.Kept
		if len(promote) > 0 {
			in := map[*Entry]bool{}
			for _, e := range f.Kept {
				in[e] = true
			}
			kept = nil
			for _, e := range f.All {
				if promote[e] || in[e] {
					kept = append(kept, e)
				}
			}
		}
		c = &converter{o: o, log: l, f: f, varKey: map[string]*variable{}, varValue: map[string]*variable{},
			names: map[string]bool{}, promote: map[*Entry]bool{}, setBy: map[string]bool{},
			res: &Result{Origin: f.Origin, LeftOut: copyCounts(f.LeftOut), ThirdParty: f.ThirdParty}}
		for e := range promote {
			c.res.LeftOut[leaveOut(e, f.Origin, o.KeepStatic)]--
		}
		c.build(kept)
		if len(c.promote) == 0 || round == 1 {
			break
		}
		for e := range c.promote {
			promote[e] = true
		}
	}
	for k, n := range c.res.LeftOut {
		if n <= 0 {
			delete(c.res.LeftOut, k)
		}
	}
	if err := c.write(); err != nil {
		return nil, err
	}
	return c.res, nil
}

func copyCounts(m map[string]int) map[string]int { return maps.Clone(m) }

func (c *converter) build(kept []*Entry) {
	for _, e := range kept {
		s := &step{e: e, sent: e.SentValues()}
		s.binds = make([]binding, len(s.sent))
		c.steps = append(c.steps, s)
	}
	c.findLogin()
	c.cutLogout()
	navigations(c.steps)
	c.bindUser()
	for _, e := range c.f.All {
		for _, ck := range e.Response.Cookies {
			c.setBy[ck.Name] = true
		}
	}
	for i, s := range c.steps {
		c.correlate(i, s)
	}
	if !c.o.NoCorrelate {
		c.forms()
	}
}

// findLogin finds the first request that sends a password.
func (c *converter) findLogin() {
	for _, s := range c.steps {
		user, pass, ok := loginFields(s.e)
		if !ok {
			continue
		}
		s.login = true
		c.login, c.user, c.pass = s, user, pass
		c.hasUser = user.Value != ""
		return
	}
}

// cutLogout leaves the logout out, with everything after it: a user logged
// out in its loop would log in again on every iteration.
func (c *converter) cutLogout() {
	loginAt := -1
	for i, s := range c.steps {
		if s == c.login {
			loginAt = i
		}
		if i <= loginAt || !isLogout(s.e) {
			continue
		}
		if loginAt < 0 {
			continue
		}
		c.res.LeftOut[LeftAfterLogout] += len(c.steps) - i
		c.steps = c.steps[:i]
		return
	}
}

// bindUser templates the login's fields, and the recorded username and
// password wherever else they were sent, from the users file.
func (c *converter) bindUser() {
	if c.login == nil {
		return
	}
	c.cols = [2]string{"username", "password"}
	if h := c.o.UsersHeader; len(h) > 0 {
		for _, col := range h {
			lc := strings.ToLower(col)
			if passwordField.MatchString(lc) {
				c.cols[1] = col
			} else if usernameField.MatchString(lc) && c.cols[0] == "username" {
				c.cols[0] = col
			}
		}
	}
	c.res.UsersHeader = []string{c.cols[0], c.cols[1]}
	if len(c.o.UsersHeader) > 0 {
		c.res.UsersHeader = c.o.UsersHeader
	}
	userT, passT := "{{user."+c.cols[0]+"}}", "{{user."+c.cols[1]+"}}"
	login := &Login{JSON: c.login.e.Request.Body.Kind() == BodyJSON}
	c.res.Login = login
	for _, s := range c.steps {
		for k, sv := range s.sent {
			if sv.Where == InCookie {
				continue
			}
			// Elsewhere than the login's own fields, a value is the
			// user's only when it is long enough not to be a coincidence
			// (a password "1234" is not every page=1234).
			own := s == c.login && (sv == c.pass || sv == c.user)
			switch {
			case sv.Value == c.pass.Value && (own || len(sv.Value) >= 6):
				s.binds[k] = binding{kind: bindUser, text: passT}
				if s == c.login {
					login.Fields = append(login.Fields, sv.String()+" ← "+passT)
				}
			case c.hasUser && sv.Value == c.user.Value && (own || len(sv.Value) >= 4):
				s.binds[k] = binding{kind: bindUser, text: userT}
				if s == c.login {
					login.Fields = append(login.Fields, sv.String()+" ← "+userT)
				}
			case c.hasUser && len(c.user.Value) >= 4 && containsBounded(sv.Value, c.user.Value):
				s.binds[k] = binding{kind: bindUser, text: strings.ReplaceAll(sv.Value, c.user.Value, userT)}
			case sv.Where == InHeader && basicHolds(sv.Value, c.pass.Value):
				s.binds[k] = binding{kind: bindDrop}
				c.res.Warnings = append(c.res.Warnings, fmt.Sprintf("%s: %s is HTTP Basic credentials, which the scenario format cannot build from the users file: left out", Route(s.e.Request.Method, s.e.Request.URL, nil), sv.String()))
			}
		}
	}
}

// containsBounded reports whether sub occurs in s not as part of a longer word.
func containsBounded(s, sub string) bool {
	for from := 0; ; {
		k := strings.Index(s[from:], sub)
		if k < 0 {
			return false
		}
		k += from
		end := k + len(sub)
		if (k == 0 || !isWordByte(s[k-1])) && (end == len(s) || !isWordByte(s[end])) {
			return true
		}
		from = k + 1
	}
}

// basicHolds reports whether an Authorization value is Basic credentials
// holding the password.
func basicHolds(v, pass string) bool {
	scheme, cred, ok := strings.Cut(v, " ")
	if !ok || !strings.EqualFold(scheme, "basic") {
		return false
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
	return err == nil && strings.Contains(string(b), pass)
}

// correlate binds every value step i sent: to a users file column (done),
// to the cookie jar, to a variable extracted from the response that first
// carried it, or to its recorded value.
func (c *converter) correlate(i int, s *step) {
	for k, sv := range s.sent {
		b := &s.binds[k]
		if b.kind != bindLiteral {
			continue
		}
		if sv.Where == InCookie {
			if c.setBy[sv.Name] {
				b.kind = bindJar
			} else {
				b.kind = bindDrop
				b.unres = &Unresolved{Kind: ScriptCookie, Why: "no response set it: the page's script did (the scenario does not send it)"}
			}
			continue
		}
		if sv.Value == "" {
			continue
		}
		if c.o.NoCorrelate {
			if sentToken(sv) {
				// Still traced, to say where a fresh value would come from.
				b.frozen = &finding{}
				if f, _, _ := c.trace(i, s, sv); f != nil {
					b.frozen = f
				}
				b.unres = &Unresolved{Kind: NotTraced, Why: "correlation switched off"}
			}
			continue
		}
		f, prefix, value := c.trace(i, s, sv)
		if f == nil {
			b.unres = classify(s, sv)
			if b.unres != nil && b.unres.Kind == NotTraced {
				b.frozen = &finding{}
			}
			continue
		}
		if f.inexpressible != "" {
			b.inexpr = f
			continue
		}
		v := c.variable(f, sv, value, s)
		b.kind, b.v, b.prefix, b.rename = bindVar, v, prefix, f.rename
	}
}

// trace finds the response that first carried a value step i sent. For a
// header such as "Bearer TOKEN" it looks for the last word when the whole
// value is not found; prefix is then the text before it, and value the
// word.
func (c *converter) trace(i int, s *step, sv Sent) (f *finding, prefix, value string) {
	tries := []Sent{sv}
	prefixes := []string{""}
	if sv.Where == InHeader {
		if sp := strings.LastIndexByte(sv.Value, ' '); sp > 0 && sp < len(sv.Value)-1 {
			tries = append(tries, Sent{Where: sv.Where, Name: sv.Name, Value: sv.Value[sp+1:]})
			prefixes = append(prefixes, sv.Value[:sp+1])
		}
	}
	for t, try := range tries {
		token := tokenLike(try.Value)
		if v := c.varValue[try.Value]; v != nil && token {
			// A token is the same value wherever it is sent again; a
			// short id may be another thing's.
			return v.f, prefixes[t], try.Value
		}
		// A token comes from the first response that carried it (the
		// one that handed it out); an id or a link's parameter from the
		// last page before the request that had it (the page it was
		// clicked on).
		for n := range i {
			j := c.steps[n]
			if !token {
				j = c.steps[i-1-n]
			}
			if f := c.find(j, try, s); f != nil {
				return f, prefixes[t], try.Value
			}
		}
	}
	// A token that only a response left out carried (a script, a
	// document of another kind): keep that response as a step.
	if tokenLike(sv.Value) && !c.o.NoCorrelate {
		for _, e := range c.f.All {
			if !e.Started.IsZero() && !s.e.Started.IsZero() && !e.Started.Before(s.e.Started) {
				break
			}
			if e == s.e {
				break
			}
			if c.isStep(e) {
				continue
			}
			probe := &step{e: e}
			if f := c.find(probe, sv, s); f != nil && f.inexpressible == "" {
				c.promote[e] = true
				return nil, "", ""
			}
		}
	}
	return nil, "", ""
}

func (c *converter) isStep(e *Entry) bool {
	for _, s := range c.steps {
		if s.e == e {
			return true
		}
	}
	return false
}

// classify says what a value that was not traced is; nil for a path
// segment, which is the route, not a value to list.
func classify(s *step, sv Sent) *Unresolved {
	if why := clientMade(sv.Value, s.e.Started); why != "" {
		return &Unresolved{Kind: ClientMade, Why: why}
	}
	if sentToken(sv) {
		return &Unresolved{Kind: NotTraced, Why: "no earlier response carried it"}
	}
	if sv.Where == InPath {
		return nil
	}
	return &Unresolved{Kind: Constant}
}

// sentToken reports whether a sent value is a token by its name or shape,
// or a header's credentials ("Bearer TOKEN").
func sentToken(sv Sent) bool {
	if secretName(sv.Name) || tokenLike(sv.Value) || strings.EqualFold(sv.Name, "Authorization") {
		return true
	}
	if sv.Where == InHeader {
		if sp := strings.LastIndexByte(sv.Value, ' '); sp > 0 {
			return tokenLike(sv.Value[sp+1:])
		}
	}
	return false
}

// variable returns the variable of a finding, making it on first use.
func (c *converter) variable(f *finding, sv Sent, value string, at *step) *variable {
	// One variable per extract, and per value a response carried: the
	// same id found by two expressions in one page is one variable.
	key := fmt.Sprintf("%p|%+v", f.from, f.ext)
	byValue := fmt.Sprintf("%p|value|%s", f.from, value)
	for _, k := range []string{key, byValue} {
		if v := c.varKey[k]; v != nil {
			c.varValue[value] = v
			return v
		}
	}
	defer func() { c.varKey[byValue] = c.varKey[key] }()
	v := &variable{base: c.varBase(f, sv, at), f: f, value: value, order: len(c.vars)}
	c.varKey[key] = v
	c.varValue[value] = v
	c.vars = append(c.vars, v)
	f.from.vars = append(f.from.vars, v)
	return v
}

// varBase is the name a variable would like: the name the value had
// where it was found, else the field that sent it.
func (c *converter) varBase(f *finding, sv Sent, at *step) string {
	base := ""
	switch {
	case f.name != "" && sv.Where != InPath:
		base = f.name
	case sv.Where == InPath:
		base = "id"
		segs := strings.Split(strings.Trim(at.e.Request.URL.Path, "/"), "/")
		if k, err := strconv.Atoi(sv.Name); err == nil && k > 0 && k <= len(segs) {
			base = segs[k-1] + "_id"
		}
	case sv.Where == InHeader:
		base = sv.Name
		if strings.EqualFold(sv.Name, "Authorization") {
			base = "token"
		}
	default:
		base = lastName(sv.Name)
	}
	base = sanitizeName(base)
	if base == "" {
		base = "value"
	}
	return base
}

// name gives a used variable its name, unique in the scenario.
func (c *converter) name(v *variable) {
	if v.name != "" {
		return
	}
	name := v.base
	for n := 2; c.names[name] || strings.HasPrefix(name, "user") || name == "vu"; n++ {
		name = fmt.Sprintf("%s_%d", v.base, n)
	}
	c.names[name] = true
	v.name = name
}

func sanitizeName(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			if b.Len() > 0 && !strings.HasSuffix(b.String(), "_") {
				b.WriteByte('_')
			}
		}
	}
	return strings.Trim(b.String(), "_")
}

// forms finds, for each form POST, the page whose form it submitted: when
// that page is the step just before, the POST becomes a submit_form that
// carries the form's own fields (its hidden tokens) as the page has them.
func (c *converter) forms() {
	for i, s := range c.steps {
		if i == 0 || s.e.Request.Method != "POST" || s.e.Request.Body.Kind() != BodyForm {
			continue
		}
		prev := c.steps[i-1]
		if len(prev.e.Response.Body) == 0 || prev.e.Response.Status >= 300 {
			continue
		}
		form, sel := matchForm(prev.e, s.e)
		if form == nil {
			continue
		}
		defaults := map[string]string{}
		for _, fl := range form.Fields {
			if _, ok := defaults[fl.Name]; !ok {
				defaults[fl.Name] = fl.Value
			}
		}
		// The fields sent must be unique by name for submit_form's fields.
		seen := map[string]bool{}
		dup := false
		for _, sv := range s.sent {
			if sv.Where == InForm {
				if seen[sv.Name] {
					dup = true
				}
				seen[sv.Name] = true
			}
		}
		if dup {
			continue
		}
		s.formPage, s.form, s.selector, s.submitForm = prev, form, sel, true
		s.unformed = append([]binding(nil), s.binds...)
		for k, sv := range s.sent {
			b := &s.binds[k]
			if sv.Where != InForm || b.kind == bindUser {
				continue
			}
			def, inForm := defaults[sv.Name]
			if !inForm || def != sv.Value {
				continue
			}
			// Carried by the form: the variable, if any, is not needed
			// for this use.
			f := &finding{from: prev, rule: "field " + sv.Name + " of the page's form, carried by submit_form"}
			for _, in := range c.index(prev).inputs {
				if in.name == sv.Name && in.typ == "hidden" {
					f.rule = "hidden input " + sv.Name + " of the page's form, carried by submit_form"
					break
				}
			}
			*b = binding{kind: bindCarried, carriedFrom: f}
		}
	}
}

// matchForm finds the form of page that post submitted, and the selector
// submit_form needs to pick it ("" when it picks it by itself).
func matchForm(page, post *Entry) (*session.Form, string) {
	target := post.Request.URL
	same := func(f *session.Form) bool {
		if f == nil || f.Method != "POST" {
			return false
		}
		u, err := url.Parse(f.Action)
		return err == nil && u.Path == target.Path && Origin(u) == Origin(target)
	}
	f, err := session.FindForm(page.Response.Body, page.Request.URL, "")
	if err == nil && same(f) {
		return f, ""
	}
	for _, a := range []string{target.RequestURI(), target.Path, target.String(), strings.TrimSuffix(target.Path, "/")} {
		sel := `form[action="` + cssEscape(a) + `"]`
		if f, err := session.FindForm(page.Response.Body, page.Request.URL, sel); err == nil && same(f) {
			return f, sel
		}
	}
	return nil, ""
}

func (s *step) routeName() string {
	if s.name != "" {
		return s.name
	}
	return Route(s.e.Request.Method, s.e.Request.URL, nil)
}

// flows splits the steps into on_start and tasks: on_start runs up to the
// end of the login's page (or the login request itself, for a login made
// by script); each later page is a task, split at idle gaps for a page
// that never navigates again; a page that uses a value extracted in an
// earlier task joins that task, as does a form POST with its form's page.
func (c *converter) flows() (onStart []*step, tasks [][]*step) {
	rest := c.steps
	if c.login != nil {
		end := 0
		for i, s := range c.steps {
			if s == c.login {
				end = i + 1
				if IsDocument(s.e) {
					for end < len(c.steps) && c.steps[end].nav == s.nav {
						end++
					}
				}
				break
			}
		}
		onStart, rest = c.steps[:end], c.steps[end:]
	}
	var navs [][]*step
	for _, s := range rest {
		if len(navs) == 0 || navs[len(navs)-1][0].nav != s.nav {
			navs = append(navs, nil)
		}
		navs[len(navs)-1] = append(navs[len(navs)-1], s)
	}
	for _, n := range navs {
		tasks = append(tasks, splitIdle(n, 2*time.Second)...)
	}
	for _, s := range onStart {
		s.flow = -1
	}
	// Merge a task into the earlier task it depends on, and every task
	// between them.
	for t := 0; t < len(tasks); t++ {
		for _, s := range tasks[t] {
			s.flow = t
		}
	}
	for changed := true; changed; {
		changed = false
		for t := 1; t < len(tasks) && !changed; t++ {
			for _, s := range tasks[t] {
				dep := c.dependsOn(s)
				if dep >= 0 && dep < t {
					merged := []*step{}
					for u := dep; u <= t; u++ {
						merged = append(merged, tasks[u]...)
					}
					tasks = append(append(tasks[:dep:dep], merged), tasks[t+1:]...)
					for u, ts := range tasks {
						for _, x := range ts {
							x.flow = u
						}
					}
					changed = true
					break
				}
			}
		}
	}
	return onStart, tasks
}

// dependsOn returns the earliest task a step takes a value from (-1 for
// none or on_start).
func (c *converter) dependsOn(s *step) int {
	dep := -1
	for _, b := range s.binds {
		if b.kind == bindVar && b.v.f.from.flow >= 0 && (dep < 0 || b.v.f.from.flow < dep) {
			dep = b.v.f.from.flow
		}
	}
	if s.submitForm && s.formPage.flow >= 0 && (dep < 0 || s.formPage.flow < dep) {
		dep = s.formPage.flow
	}
	return dep
}

// sortedKeys returns a map's keys in order.
func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
