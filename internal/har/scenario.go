package har

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"mime/multipart"
	"net/textproto"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// write shapes the steps into on_start and tasks and writes the scenario.
func (c *converter) write() error {
	onStart, tasks := c.flows()
	// submit_form takes its form from the previous response of the same
	// flow: a POST whose form's page is not just before it sends its
	// fields itself.
	unform := func(list []*step) {
		for i, s := range list {
			if s.submitForm && (i == 0 || list[i-1] != s.formPage) {
				s.submitForm, s.binds = false, s.unformed
			}
		}
	}
	unform(onStart)
	for _, t := range tasks {
		unform(t)
	}
	// Variables are named in the order they are first used, those still
	// used only.
	for _, s := range c.steps {
		for _, b := range s.binds {
			if b.kind == bindVar {
				c.name(b.v)
			}
		}
	}
	for _, s := range c.steps {
		s.name = c.stepName(s)
	}
	if c.login != nil {
		c.res.Login.Step, c.res.Login.SubmitForm = c.login.name, c.login.submitForm
	}
	c.record()

	var out bytes.Buffer
	c.header(&out)
	target := c.o.Target
	if target == "" {
		target = c.res.Origin
	}
	fmt.Fprintf(&out, "target: %s\n", scalar(target))
	out.WriteString("load:\n  users: 10\n  spawn_rate: 2\n  duration: 60s\n")
	if lo, hi, ok := thinkRange(append([][]*step{onStart}, tasks...)); ok {
		c.res.Think = dur(lo)
		if hi > lo {
			c.res.Think += ".." + dur(hi)
		}
	} else {
		c.res.Think = "1s..3s"
	}
	fmt.Fprintf(&out, "think: %s\n", scalar(c.res.Think))
	if c.login != nil {
		uf := c.o.UsersFile
		if uf == "" {
			uf = "users.csv"
		}
		fmt.Fprintf(&out, "users_file: %s\n", scalar(uf))
		out.WriteString("user_assignment: round-robin\n")
	}
	if len(onStart) > 0 {
		out.WriteString("on_start:\n")
		for i, s := range onStart {
			out.WriteString(c.renderStep(s, "  "))
			c.res.Steps = append(c.res.Steps, StepRecord{Task: -1, Index: i, Name: s.name, Entry: s.e, Login: s.login, Sources: s.sources, Location: c.location(s)})
		}
	}
	// Tasks whose steps are the same are one task, weighted by how often
	// the recording made it.
	type task struct {
		name   string
		weight int
		steps  []*step
		text   string
	}
	var ts []*task
	byText := map[string]*task{}
	for _, t := range tasks {
		var b strings.Builder
		for _, s := range t {
			b.WriteString(c.renderStep(s, "      "))
		}
		if have := byText[b.String()]; have != nil {
			have.weight++
			continue
		}
		nt := &task{name: t[0].name, weight: 1, steps: t, text: b.String()}
		byText[nt.text] = nt
		ts = append(ts, nt)
	}
	if len(ts) > 0 {
		out.WriteString("tasks:\n")
		names := map[string]int{}
		for i, t := range ts {
			name := t.name
			if names[name]++; names[name] > 1 {
				name = fmt.Sprintf("%s (%d)", name, names[name])
			}
			fmt.Fprintf(&out, "  - name: %s\n    weight: %d\n    steps:\n", scalar(name), t.weight)
			out.WriteString(t.text)
			for j, s := range t.steps {
				c.res.Steps = append(c.res.Steps, StepRecord{Task: i, Index: j, Name: s.name, Entry: s.e, Sources: s.sources, Location: c.location(s)})
			}
		}
	}
	if len(onStart) == 0 && len(ts) == 0 {
		return fmt.Errorf("nothing to load: every request was left out")
	}
	c.res.Scenario = out.Bytes()
	return c.guard()
}

// location is where the step's recorded redirect went, the recorded
// username in it templated as the scenario's ("/profile/{{user.username}}/").
func (c *converter) location(s *step) string {
	loc := s.e.Response.RedirectURL
	if c.login != nil && c.hasUser && len(c.user.Value) >= 4 {
		for _, form := range []string{c.user.Value, url.PathEscape(c.user.Value), url.QueryEscape(c.user.Value)} {
			if containsBounded(loc, form) {
				loc = strings.ReplaceAll(loc, form, "{{user."+c.cols[0]+"}}")
			}
		}
	}
	return loc
}

// guard refuses to return a scenario that holds the recorded password,
// and names any place the recorded username is left.
func (c *converter) guard() error {
	if c.login == nil {
		return nil
	}
	if p := c.pass.Value; len(p) >= 6 && bytes.Contains(c.res.Scenario, []byte(p)) {
		line := 1 + bytes.Count(c.res.Scenario[:bytes.Index(c.res.Scenario, []byte(p))], []byte("\n"))
		return fmt.Errorf("the recorded password would appear in the scenario at line %d: refusing to write it (report this as a bug)", line)
	}
	if u := c.user.Value; len(u) >= 3 && bytes.Contains(c.res.Scenario, []byte(u)) {
		line := 1 + bytes.Count(c.res.Scenario[:bytes.Index(c.res.Scenario, []byte(u))], []byte("\n"))
		c.res.Warnings = append(c.res.Warnings, fmt.Sprintf("the recorded username is left in the scenario at line %d (inside a longer value)", line))
	}
	return nil
}

// record fills the variables' uses, the steps' sources, the
// correlations and the values sent as recorded, in the order the values
// were first sent.
func (c *converter) record() {
	seen := map[*variable]bool{}
	c.res.Correlations = nil
	c.res.Unresolved = nil
	for _, s := range c.steps {
		var sources []Source
		for k, b := range s.binds {
			sv := s.sent[k]
			use := s.name + " " + sv.String()
			token := sentToken(sv)
			switch {
			case b.kind == bindVar:
				b.v.uses = append(b.v.uses, use)
				sources = append(sources, Source{Sent: sv.String(), From: b.v.f.from.name + " (" + b.v.f.rule + "), extracted as {{" + b.v.name + "}}", Token: token})
				if !seen[b.v] {
					seen[b.v] = true
					c.res.Correlations = append(c.res.Correlations, Correlation{Var: b.v.name, From: b.v.f.from.name,
						FromEntry: b.v.f.from.e.Index, Rule: b.v.f.rule, Extract: b.v.f.ext, Approximate: b.v.f.approx})
				}
			case b.kind == bindCarried:
				f := b.carriedFrom
				sources = append(sources, Source{Sent: sv.String(), From: f.from.name + " (" + f.rule + ")", Token: token})
				c.res.Correlations = append(c.res.Correlations, Correlation{From: f.from.name, FromEntry: f.from.e.Index,
					Rule: f.rule, UsedIn: []string{use}})
			case b.inexpr != nil:
				f := b.inexpr
				sources = append(sources, Source{Sent: sv.String(), From: f.from.name + " (" + f.rule + ")", Frozen: true, Token: true})
				c.res.Correlations = append(c.res.Correlations, Correlation{From: f.from.name, FromEntry: f.from.e.Index,
					Rule: f.rule, UsedIn: []string{use}, NotExpressed: f.inexpressible})
			case b.frozen != nil:
				src := Source{Sent: sv.String(), Frozen: true, Token: true}
				if f := b.frozen; f.from != nil {
					src.From = f.from.routeName() + " (" + f.rule + ")"
				}
				sources = append(sources, src)
			}
			if b.unres != nil && b.kind != bindCarried && b.kind != bindVar {
				u := *b.unres
				u.Step, u.Sent = s.name, sv.String()
				if u.Kind == Constant && len(sv.Value) <= 40 && !secretName(sv.Name) && !tokenLike(sv.Value) {
					u.Value = sv.Value
				}
				c.res.Unresolved = append(c.res.Unresolved, u)
			}
		}
		s.sources = sources
	}
	for i := range c.res.Correlations {
		cr := &c.res.Correlations[i]
		if cr.Var == "" {
			continue
		}
		for _, v := range c.vars {
			if v.name == cr.Var {
				cr.UsedIn = v.uses
			}
		}
	}
}

// stepName is the step's route, with its templated path segments named.
func (c *converter) stepName(s *step) string {
	templ := map[int]string{}
	for k, sv := range s.sent {
		if sv.Where != InPath {
			continue
		}
		n, _ := strconv.Atoi(sv.Name)
		switch s.binds[k].kind {
		case bindUser:
			templ[n] = "user"
		case bindVar:
			templ[n] = "id"
		}
	}
	return Route(s.e.Request.Method, s.e.Request.URL, templ)
}

// header writes the scenario's opening comment: where it comes from, what
// was left out, the login's templated fields and the correlations.
func (c *converter) header(out *bytes.Buffer) {
	src := c.o.Source
	if src == "" {
		src = "a recording"
	}
	tool := c.log.Creator.Name
	if c.log.Creator.Version != "" {
		tool += " " + c.log.Creator.Version
	}
	fmt.Fprintf(out, "# Made by stampede har from %s", oneLine(src))
	if tool != "" {
		fmt.Fprintf(out, " (written by %s)", oneLine(tool))
	}
	fmt.Fprintf(out, ": %d requests to %s kept of %d.\n", len(c.steps), c.res.Origin, len(c.log.Entries))
	if len(c.res.LeftOut) > 0 {
		var parts []string
		for _, k := range sortedKeys(c.res.LeftOut) {
			p := fmt.Sprintf("%d %s", c.res.LeftOut[k], k)
			if k == LeftThirdParty && len(c.res.ThirdParty) > 0 {
				var hosts []string
				for _, h := range sortedKeys(c.res.ThirdParty) {
					hosts = append(hosts, fmt.Sprintf("%s %d", h, c.res.ThirdParty[h]))
				}
				if len(hosts) > 4 {
					hosts = append(hosts[:4], "…")
				}
				p += " (" + strings.Join(hosts, ", ") + ")"
			}
			parts = append(parts, p)
		}
		fmt.Fprintf(out, "# Left out: %s.\n", oneLine(strings.Join(parts, "; ")))
	}
	if l := c.res.Login; l != nil {
		fmt.Fprintf(out, "# The login (%s) takes its user from the users file: %s; the recorded username and password are not in this file.\n",
			c.login.name, strings.Join(l.Fields, ", "))
	}
	if c.o.NoCorrelate {
		out.WriteString("# Correlation switched off (--no-correlate): every value is sent as recorded.\n")
	}
	for _, cr := range c.res.Correlations {
		if cr.NotExpressed != "" {
			fmt.Fprintf(out, "# Sent as recorded though traced to %s (%s): %s.\n", cr.From, oneLine(cr.Rule), cr.NotExpressed)
		}
	}
	for _, w := range c.res.Warnings {
		fmt.Fprintf(out, "# %s\n", oneLine(w))
	}
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func dur(d time.Duration) string {
	if d%time.Second == 0 {
		return strconv.Itoa(int(d/time.Second)) + "s"
	}
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "s"
}

// value returns the text a step sends for sent value k: its template or
// its recorded value.
func (s *step) value(k int) string {
	b := s.binds[k]
	switch b.kind {
	case bindUser:
		return b.text
	case bindVar:
		return b.prefix + "{{" + b.v.name + "}}"
	}
	return s.sent[k].Value
}

// renderStep writes one step of a list at indent.
func (c *converter) renderStep(s *step, indent string) string {
	var b strings.Builder
	in := indent + "    "
	e := s.e
	fmt.Fprintf(&b, "%s- name: %s\n", indent, scalar(s.name))
	fmt.Fprintf(&b, "%s  # %s", indent, e.Path())
	if e.ResourceType != "" {
		fmt.Fprintf(&b, " (%s)", e.ResourceType)
	}
	b.WriteString("\n")
	ind := indent + "  "
	if s.submitForm {
		fmt.Fprintf(&b, "%ssubmit_form:\n", ind)
		if s.selector != "" {
			fmt.Fprintf(&b, "%sselector: %s\n", in, scalar(s.selector))
		}
		var fields [][2]string
		for k, sv := range s.sent {
			if sv.Where != InForm || s.binds[k].kind == bindCarried {
				continue
			}
			fields = append(fields, [2]string{sv.Name, s.value(k)})
		}
		if len(fields) > 0 {
			fmt.Fprintf(&b, "%sfields:\n", in)
			for _, f := range fields {
				fmt.Fprintf(&b, "%s  %s: %s\n", in, scalar(f[0]), scalar(f[1]))
			}
		}
	} else {
		method := strings.ToLower(e.Request.Method)
		switch method {
		case "get", "post", "put", "patch", "delete":
		default:
			method = "get"
			c.res.Warnings = append(c.res.Warnings, fmt.Sprintf("%s: the scenario format has no %s: sent as GET", s.name, e.Request.Method))
		}
		fmt.Fprintf(&b, "%s%s: %s\n", ind, method, scalar(s.url()))
	}
	headers := s.headers()
	body, bodyType := "", ""
	if !s.submitForm {
		var lines string
		lines, body, bodyType = s.body(ind)
		b.WriteString(lines)
	}
	if bodyType != "" {
		headers = append(headers, [2]string{"Content-Type", bodyType})
	}
	if body != "" {
		fmt.Fprintf(&b, "%sbody: %s\n", ind, quoted(body))
	}
	if len(headers) > 0 {
		fmt.Fprintf(&b, "%sheaders:\n", ind)
		for _, h := range headers {
			fmt.Fprintf(&b, "%s%s: %s\n", in, scalar(h[0]), scalar(h[1]))
		}
	}
	var vars []*variable
	for _, v := range s.vars {
		if len(v.uses) > 0 {
			vars = append(vars, v)
		}
	}
	if len(vars) > 0 {
		fmt.Fprintf(&b, "%sextract:\n", ind)
		for _, v := range vars {
			fmt.Fprintf(&b, "%s%s: %s  # %s\n", in, v.name, extractYAML(v.f.ext), oneLine(v.f.rule))
		}
	}
	status := e.Response.Status
	if status == 304 {
		status = 200 // the recording's browser had it cached; stampede's has not
	}
	exp := []string{fmt.Sprintf("status: [%d]", status)}
	if s.login {
		exp = append(exp, "not_login_page: true")
		if status >= 300 && status < 400 {
			login := e.Request.URL.Path
			if s.formPage != nil {
				login = s.formPage.e.Request.URL.Path
			}
			exp = append(exp, "redirect_not_to: "+scalar(login))
		}
	}
	fmt.Fprintf(&b, "%sexpect: {%s}\n", ind, strings.Join(exp, ", "))
	return b.String()
}

// url is the step's URL relative to the target, with its path segments
// and query parameters templated.
func (s *step) url() string {
	u := s.e.Request.URL
	segs := strings.Split(strings.Trim(u.EscapedPath(), "/"), "/")
	var q []string
	for k, sv := range s.sent {
		switch sv.Where {
		case InPath:
			n, _ := strconv.Atoi(sv.Name)
			if n < len(segs) && (s.binds[k].kind == bindUser || s.binds[k].kind == bindVar) {
				segs[n] = s.value(k)
			}
		case InQuery:
			v := url.QueryEscape(sv.Value)
			if s.binds[k].kind == bindUser || s.binds[k].kind == bindVar {
				v = s.value(k)
			}
			q = append(q, url.QueryEscape(sv.Name)+"="+v)
		}
	}
	p := "/" + strings.Join(segs, "/")
	if strings.HasSuffix(u.EscapedPath(), "/") && p != "/" {
		p += "/"
	}
	if len(q) > 0 {
		p += "?" + strings.Join(q, "&")
	} else if u.RawQuery != "" {
		p += "?" + u.RawQuery
	}
	return p
}

// headers are the request headers the page set (not the browser's own),
// templated, and Accept for a request made by script.
func (s *step) headers() [][2]string {
	var out [][2]string
	for k, sv := range s.sent {
		if sv.Where != InHeader || s.binds[k].kind == bindDrop {
			continue
		}
		name := sv.Name
		if s.binds[k].rename != "" {
			name = s.binds[k].rename
		}
		out = append(out, [2]string{name, s.value(k)})
	}
	if !IsDocument(s.e) {
		if a := s.e.Request.Headers.Get("Accept"); a != "" && a != "*/*" {
			out = append(out, [2]string{"Accept", a})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out
}

// body returns the lines of a form or json body, or the text of a body
// sent as is with its content type.
func (s *step) body(ind string) (lines, raw, contentType string) {
	rb := s.e.Request.Body
	switch rb.Kind() {
	case BodyNone:
		return "", "", ""
	case BodyForm:
		var fields [][2]string
		names := map[string]bool{}
		dup := false
		for k, sv := range s.sent {
			if sv.Where != InForm {
				continue
			}
			if names[sv.Name] {
				dup = true
			}
			names[sv.Name] = true
			fields = append(fields, [2]string{sv.Name, s.value(k)})
		}
		if !dup && len(fields) > 0 {
			var b strings.Builder
			fmt.Fprintf(&b, "%sform:\n", ind)
			for _, f := range fields {
				fmt.Fprintf(&b, "%s  %s: %s\n", ind, scalar(f[0]), scalar(f[1]))
			}
			return b.String(), "", ""
		}
		var parts []string
		for _, f := range fields {
			v := f[1]
			if !strings.Contains(v, "{{") {
				v = url.QueryEscape(v)
			}
			parts = append(parts, url.QueryEscape(f[0])+"="+v)
		}
		return "", strings.Join(parts, "&"), "application/x-www-form-urlencoded"
	case BodyMultipart:
		_, params, _ := mime.ParseMediaType(rb.MimeType)
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		if params["boundary"] != "" {
			_ = mw.SetBoundary(params["boundary"])
		}
		k := 0
		for _, p := range rb.Fields() {
			var w interface{ Write([]byte) (int, error) }
			var err error
			if p.FileName != "" {
				h := textproto.MIMEHeader{}
				h.Set("Content-Disposition", fmt.Sprintf(`form-data; name=%q; filename=%q`, p.Name, p.FileName))
				ct := p.ContentType
				if ct == "" {
					ct = "application/octet-stream"
				}
				h.Set("Content-Type", ct)
				if w, err = mw.CreatePart(h); err == nil {
					_, _ = w.Write([]byte(p.Value))
				}
				continue
			}
			val := p.Value
			for ; k < len(s.sent); k++ {
				if s.sent[k].Where == InForm && s.sent[k].Name == p.Name {
					val = s.value(k)
					k++
					break
				}
			}
			if w, err = mw.CreateFormField(p.Name); err == nil {
				_, _ = w.Write([]byte(val))
			}
		}
		_ = mw.Close()
		return "", buf.String(), mw.FormDataContentType()
	case BodyJSON:
		v, _ := rb.JSON()
		bound := map[string]string{}
		for k, sv := range s.sent {
			if sv.Where == InJSON && (s.binds[k].kind == bindUser || s.binds[k].kind == bindVar) {
				bound[sv.Name] = s.value(k)
			}
		}
		bare := false
		text := jsonFlow(v, "", bound, &bare)
		if bare {
			return "", text, "application/json"
		}
		return fmt.Sprintf("%sjson: %s\n", ind, text), "", ""
	}
	ct := rb.MimeType
	if ct == "" {
		ct = "text/plain"
	}
	return "", rb.Text, ct
}

// jsonFlow writes a JSON value as one line of YAML flow (which JSON is),
// with the leaves at bound's paths replaced by their templates. A
// template that replaces a number or a boolean is written bare (so the
// value keeps its type), which YAML cannot hold: *bare is then set and the
// text goes into a body.
func jsonFlow(v any, path string, bound map[string]string, bare *bool) string {
	join := func(p, k string) string {
		if p == "" {
			return k
		}
		return p + "." + k
	}
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = jsonString(k) + ": " + jsonFlow(x[k], join(path, k), bound, bare)
		}
		return "{" + strings.Join(parts, ", ") + "}"
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = jsonFlow(e, path+"["+strconv.Itoa(i)+"]", bound, bare)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case string:
		if t, ok := bound[path]; ok {
			return jsonString(t)
		}
		return jsonString(x)
	case json.Number:
		if t, ok := bound[path]; ok {
			*bare = true
			return t
		}
		return x.String()
	case bool:
		if t, ok := bound[path]; ok {
			*bare = true
			return t
		}
		return strconv.FormatBool(x)
	case nil:
		return "null"
	}
	return "null"
}

func jsonString(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return strings.TrimSuffix(b.String(), "\n")
}

func extractYAML(e Extract) string {
	if e.Decode != "" {
		x := e
		x.Decode = ""
		return strings.TrimSuffix(extractYAML(x), "}") + ", decode: " + scalar(e.Decode) + "}"
	}
	switch {
	case e.Header != "":
		return "{header: " + scalar(e.Header) + "}"
	case e.Cookie != "":
		return "{cookie: " + scalar(e.Cookie) + "}"
	case e.JSON != "":
		return "{json: " + scalar(e.JSON) + "}"
	case e.CSS != "":
		s := "{css: " + single(e.CSS)
		if e.Attr != "" {
			s += ", attr: " + scalar(e.Attr)
		}
		return s + "}"
	}
	return "{regex: " + single(e.Regex) + "}"
}

// plainRe matches the strings a YAML plain scalar holds as they are (in
// a block or a flow collection).
var plainRe = regexp.MustCompile(`^[A-Za-z0-9_/.(][A-Za-z0-9_./?=&%+@()' :-]*$`)

// scalar writes a string as a YAML scalar: plain when it reads the same,
// else double-quoted.
func scalar(s string) string {
	if plainRe.MatchString(s) && !yamlSpecial(s) && !strings.Contains(s, ": ") && !strings.HasSuffix(s, ":") &&
		!strings.HasSuffix(s, " ") && !strings.Contains(s, " #") {
		return s
	}
	return quoted(s)
}

// yamlSpecial reports whether a plain scalar would be read as something
// other than a string.
func yamlSpecial(s string) bool {
	switch strings.ToLower(s) {
	case "true", "false", "yes", "no", "on", "off", "null", "y", "n", "~", ".inf", ".nan", "-.inf":
		return true
	}
	if _, err := strconv.ParseFloat(s, 64); err == nil {
		return true
	}
	if _, err := strconv.ParseInt(s, 0, 64); err == nil {
		return true
	}
	return strings.HasPrefix(s, "0") && len(s) > 1
}

// quoted writes a YAML double-quoted scalar (JSON's escapes are YAML's).
func quoted(s string) string { return jsonString(s) }

// single writes a YAML single-quoted scalar, for regular expressions and
// selectors, whose backslashes stay as they are.
func single(s string) string {
	if strings.ContainsAny(s, "\n\r\t") {
		return quoted(s)
	}
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
