// Package check runs a scenario once, as one user of its users file, and
// says whether each step did what the recording did (stampede har --check)
// or what the scenario expects (stampede run --check): the first step that
// differs, and why, in words.
package check

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"

	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/load"
	"github.com/stampede-load/stampede/internal/session"
)

// Recorded is what a recording got for a step.
type Recorded struct {
	Status int
	// Location is where a 3xx sent the browser ("" for none).
	Location string
	// LoginPage says the response showed a login form.
	LoginPage bool
	// ContentType is the response's media type ("text/html").
	ContentType string
	// Size is the body's size; -1 when unknown.
	Size int64
	// Sources say where the step's dynamic values came from.
	Sources []Source
}

// Source is where a value a step sends came from.
type Source struct {
	// Sent names the value: "form field csrfmiddlewaretoken".
	Sent string
	// From is the response that handed it out and by what rule; "" when
	// it was not traced.
	From string
	// Frozen marks a value sent as recorded.
	Frozen bool
	// Token marks a value named or shaped like a token.
	Token bool
}

// Options configure Run. The zero value is valid: user 1, no recording.
type Options struct {
	// User is the virtual user (from 1) whose users-file row logs in.
	User int
	// Recorded returns what the recording got for a step (task -1 for
	// on_start); nil for a step the recording does not have. Without it
	// each step is checked against its own expect, and the login against
	// the pages after it.
	Recorded func(task, index int) *Recorded
	// SizeFactor is how far apart the sizes of a page and its recording
	// may be (both ways); 0 means 5. Sizes under 1 KiB are not compared.
	SizeFactor float64
}

// Step is a step as the check ran it.
type Step struct {
	Task, Index int
	Name        string
	Method      string
	// URL is the request's path and query, masked.
	URL         string
	Status      int
	Location    string
	ContentType string
	Size        int64
	// Problem says how the step differs, "" when it does not.
	Problem string
}

// Report is what Run found.
type Report struct {
	Steps []Step
	// Failed is the first step that differs (the last of Steps); nil when
	// every step passed.
	Failed *Step
}

// Run runs the plan once and checks each step until one differs.
func Run(ctx context.Context, p *load.Plan, o Options) (*Report, error) {
	n := o.User
	if n <= 0 {
		n = 1
	}
	factor := o.SizeFactor
	if factor <= 0 {
		factor = 5
	}
	r := &Report{}
	loggedIn := false
	loginSteps := map[string]bool{}
	for _, name := range p.LoginSteps() {
		loginSteps[name] = true
	}
	err := p.RunOnce(ctx, n, func(t *load.Trace) bool {
		st := Step{Task: t.Task, Index: t.Index, Name: t.Step.Name, Method: t.Result.Method, Status: t.Page.Status}
		if len(t.Sent) > 0 {
			last := t.Sent[len(t.Sent)-1]
			st.URL = p.Mask(requestURI(t.Sent[0].URL))
			if loc := last.ResponseHeader.Get("Location"); loc != "" && last.Status >= 300 && last.Status < 400 {
				st.Location = p.Mask(loc)
			}
		}
		if t.Page.Header != nil {
			st.ContentType = mediaType(t.Page.Header.Get("Content-Type"))
		}
		st.Size = t.Page.Size
		var rec *Recorded
		if o.Recorded != nil {
			rec = o.Recorded(t.Task, t.Index)
		}
		if rec != nil {
			st.Problem = compare(p, n, t, rec, factor)
		} else {
			st.Problem = expectProblem(p, t, loginSteps, &loggedIn)
		}
		r.Steps = append(r.Steps, st)
		if st.Problem != "" {
			r.Failed = &r.Steps[len(r.Steps)-1]
			return false
		}
		return true
	})
	if err != nil {
		return r, fmt.Errorf("check: %w", err)
	}
	return r, nil
}

// compare says how a step's response differs from the recording's.
func compare(p *load.Plan, n int, t *load.Trace, rec *Recorded, factor float64) string {
	res := &t.Result
	switch res.Outcome {
	case stampede.FailTransport, stampede.FailTimeout:
		return "no response: " + res.Reason
	}
	if len(t.Sent) == 0 {
		return res.Reason + tokens(rec, false, "")
	}
	pg := &t.Page
	want := rec.Status
	if want == 304 {
		want = 200
	}
	words := pageText(p, res, pg)
	if pg.Status != want {
		return fmt.Sprintf("%d %s (recorded %d)", pg.Status, words, want) + tokens(rec, true, words)
	}
	if session.IsLoginPage(pg.Body) && !rec.LoginPage {
		return "the login page was shown again" + colon(loginText(p, res, pg)) + tokens(rec, true, words)
	}
	if rec.Location != "" || (pg.Status >= 300 && pg.Status < 400) {
		got := pg.Header.Get("Location")
		want := userTemplate(p, n, rec.Location)
		if route(got) != route(want) {
			return fmt.Sprintf("redirected to %s, recorded %s", p.Mask(requestURI(got)), p.Mask(requestURI(want))) + tokens(rec, true, words)
		}
	}
	if ct := mediaType(pg.Header.Get("Content-Type")); rec.ContentType != "" && ct != rec.ContentType {
		return fmt.Sprintf("content type %s, recorded %s", orNone(ct), rec.ContentType)
	}
	if a, b := float64(pg.Size), float64(rec.Size); rec.Size >= 0 && max(a, b) >= 1024 && (a*factor < b || b*factor < a) {
		return fmt.Sprintf("%d bytes, recorded %d (more than %g× apart)", pg.Size, rec.Size, factor)
	}
	if res.Outcome != stampede.OK {
		return res.Reason
	}
	return ""
}

// userTemplate fills the {{user.COLUMN}} of a recorded text with user n's
// row of the users file (as RunOnce assigns it).
func userTemplate(p *load.Plan, n int, s string) string {
	if !strings.Contains(s, "{{user.") || len(p.Rows) == 0 {
		return s
	}
	row := p.Rows[(n-1)%len(p.Rows)]
	if p.Assignment == load.Shared {
		row = p.Rows[0]
	}
	for i, h := range p.Header {
		if i < len(row) {
			s = strings.ReplaceAll(s, "{{user."+h+"}}", url.PathEscape(row[i]))
		}
	}
	return s
}

// expectProblem checks a step against its own expect, and the login
// against the pages after it.
func expectProblem(p *load.Plan, t *load.Trace, loginSteps map[string]bool, loggedIn *bool) string {
	res := &t.Result
	if res.Outcome != stampede.OK {
		if res.Status != 0 && !strings.HasPrefix(res.Reason, "login page") && t.Page.Body != nil {
			return fmt.Sprintf("%d %s", res.Status, pageText(p, res, &t.Page)) + expectedStatus(t.Step)
		}
		return res.Reason
	}
	if loginSteps[t.Step.Name] {
		*loggedIn = true
		return ""
	}
	if *loggedIn && t.Task >= 0 && session.IsLoginPage(t.Page.Body) {
		return "the login page was shown: the login did not hold (or the session was lost)"
	}
	return ""
}

func expectedStatus(s *load.Step) string {
	if len(s.Status) == 0 {
		return " (expected 2xx or 3xx)"
	}
	parts := make([]string, len(s.Status))
	for i, c := range s.Status {
		parts[i] = strconv.Itoa(c)
	}
	return " (expected " + strings.Join(parts, " or ") + ")"
}

// tokens says where the tokens the step sent came from, for a step the
// server refused: a frozen token first, and first a token the page's
// error names, then one named as a token (csrf, token, nonce).
func tokens(rec *Recorded, refused bool, pageText string) string {
	type line struct {
		text  string
		score int
	}
	var lines []line
	frozen := false
	text := strings.ToLower(pageText)
	for _, s := range rec.Sources {
		if !s.Token {
			continue
		}
		name := strings.ToLower(s.Sent[strings.LastIndexByte(s.Sent, ' ')+1:])
		score := 0
		switch {
		case name != "" && strings.Contains(text, name):
			score = 3
		case strings.Contains(name, "csrf") || strings.Contains(name, "xsrf") || strings.Contains(name, "token") ||
			strings.Contains(name, "nonce") || strings.Contains(name, "authorization"):
			score = 2
		}
		if s.Frozen {
			score += 10
			frozen = true
		}
		var l string
		switch {
		case s.Frozen && s.From != "":
			l = fmt.Sprintf("the token sent (%s) is the recording's, frozen: the server hands out a fresh one in %s", s.Sent, s.From)
		case s.Frozen:
			l = fmt.Sprintf("the token sent (%s) is the recording's, frozen: no earlier response carried it", s.Sent)
		default:
			l = fmt.Sprintf("the token sent (%s) came from %s", s.Sent, s.From)
		}
		lines = append(lines, line{l, score})
	}
	if (!refused && !frozen) || len(lines) == 0 {
		return ""
	}
	sort.SliceStable(lines, func(i, j int) bool { return lines[i].score > lines[j].score })
	if len(lines) > 2 {
		lines = lines[:2]
	}
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = l.text
	}
	return " — " + strings.Join(out, "; ")
}

// pageText is the page's own words for its status: its error text, title
// or heading (as the run's failure reason has it), else the status text.
func pageText(p *load.Plan, res *stampede.Result, pg *session.Page) string {
	if t := errorText(p, res, pg); t != "" {
		return t
	}
	return statusText(pg.Status)
}

// loginText is the error a login page shows again ("Too many failed login
// attempts"), "" when it shows none.
func loginText(p *load.Plan, res *stampede.Result, pg *session.Page) string {
	if t, ok := strings.CutPrefix(res.Reason, "login page returned: "); ok {
		return t
	}
	if t := session.ErrorText(pg.Body); t != "" {
		return clip(p.Mask(t), 120)
	}
	return ""
}

func errorText(p *load.Plan, res *stampede.Result, pg *session.Page) string {
	if t := jsonMessage(pg); t != "" {
		return clip(p.Mask(t), 120)
	}
	if t, ok := strings.CutPrefix(res.Reason, "login page returned: "); ok {
		return t
	}
	if t := session.ErrorText(pg.Body); t != "" {
		return clip(p.Mask(t), 120)
	}
	if t := pageWords(pg.Body, pg.Status); t != "" {
		return clip(p.Mask(t), 120)
	}
	return ""
}

func statusText(code int) string {
	switch code {
	case 419:
		return "Page Expired"
	}
	if t := httpStatusText(code); t != "" {
		return t
	}
	return "HTTP " + strconv.Itoa(code)
}

func colon(s string) string {
	if s == "" {
		return ""
	}
	return ": " + s
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func mediaType(ct string) string {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.ToLower(strings.TrimSpace(ct))
}

// requestURI is a URL's path and query.
func requestURI(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Path == "" && u.RawQuery == "" {
		return raw
	}
	return u.RequestURI()
}

// route is a URL's path with its ids collapsed, to compare redirects made
// with other ids than the recording's.
func route(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	segs := strings.Split(u.Path, "/")
	for i, s := range segs {
		if s != "" && (allDigits(s) || len(s) >= 16) {
			segs[i] = ":id"
		}
	}
	return path.Clean("/" + strings.Join(segs, "/"))
}

func allDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}

func httpStatusText(code int) string { return http.StatusText(code) }

// jsonMessage is the message of a JSON error body: its "message",
// "error", "detail" or "title".
func jsonMessage(pg *session.Page) string {
	if pg.Header == nil || !strings.Contains(mediaType(pg.Header.Get("Content-Type")), "json") {
		return ""
	}
	var v map[string]any
	if json.Unmarshal(pg.Body, &v) != nil {
		return ""
	}
	for _, k := range []string{"message", "error", "detail", "title", "error_description"} {
		if s, ok := v[k].(string); ok && strings.TrimSpace(s) != "" {
			return strings.Join(strings.Fields(s), " ")
		}
	}
	return ""
}

// pageWords returns what an error page says: its <title>, first <h1> or
// first <p>, the first that says more than the status ("403 Forbidden"):
// Django's CSRF page is titled "403 Forbidden" and says "CSRF verification
// failed. Request aborted." in its first paragraph.
func pageWords(body []byte, status int) string {
	s := string(body[:min(len(body), 8192)])
	lo := strings.ToLower(s)
	var first string
	for _, tag := range []string{"title", "h1", "p", "h2"} {
		i := strings.Index(lo, "<"+tag)
		for i >= 0 && i+len(tag)+1 < len(lo) && isTagChar(lo[i+len(tag)+1]) {
			// <pre>, <param>: another tag of the same prefix.
			j := strings.Index(lo[i+1:], "<"+tag)
			if j < 0 {
				i = -1
				break
			}
			i += 1 + j
		}
		if i < 0 {
			continue
		}
		j := strings.IndexByte(lo[i:], '>')
		if j < 0 {
			continue
		}
		k := strings.Index(lo[i+j:], "</"+tag)
		if k < 0 {
			continue
		}
		t := strings.Join(strings.Fields(stripTags(s[i+j+1:i+j+k])), " ")
		if t == "" {
			continue
		}
		if first == "" {
			first = t
		}
		if !statusOnly(t, status) {
			return t
		}
	}
	return ""
}

func isTagChar(c byte) bool { return c >= 'a' && c <= 'z' }

// statusOnly reports whether a text says no more than the status:
// "403 Forbidden", "Forbidden (403)".
func statusOnly(t string, status int) bool {
	r := strings.NewReplacer(strconv.Itoa(status), "", strings.ToLower(http.StatusText(status)), "", "(", "", ")", "", "-", "", ":", "", "error", "", "http", "")
	return strings.TrimSpace(r.Replace(strings.ToLower(t))) == ""
}

func stripTags(s string) string {
	var b strings.Builder
	in := false
	for _, r := range s {
		switch {
		case r == '<':
			in = true
		case r == '>':
			in = false
		case !in:
			b.WriteRune(r)
		}
	}
	return b.String()
}
