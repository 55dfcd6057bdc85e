// Package stampede holds the vocabulary shared by every part of the tool: a
// request's Result, a probe's Sample, a log's Evidence and the diagnosis'
// Finding. It depends on the standard library only; every other package
// imports it and it imports none of them.
package stampede

import (
	"strings"
	"time"
)

// Version is the tool's version, overridden at build time with
// -ldflags "-X github.com/stampede-load/stampede.Version=v1.2.3".
var Version = "0.1.0-dev"

// Outcome classifies how a request ended. A failed request is data, never a
// Go error: the engine records it and goes on.
type Outcome uint8

// The outcomes of a request.
const (
	// OK means the response met every expectation of its step.
	OK Outcome = iota
	// FailStatus means the status code was not one the step expects
	// (by default any 2xx or 3xx is expected).
	FailStatus
	// FailContent means the status was accepted but the body was not: the
	// login page shown again (not_login_page), body_contains and the like.
	// The seed's rate limit hid behind exactly this: a 200 with the login form.
	FailContent
	// FailTransport means no response arrived: connection refused or reset,
	// EOF, DNS, TLS.
	FailTransport
	// FailTimeout means the request timed out on the client side.
	FailTimeout
)

var outcomeNames = [...]string{"ok", "status", "content", "transport", "timeout"}

// String returns the outcome's name as written in requests.csv.
func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return "unknown"
}

// ParseOutcome is the inverse of Outcome.String. Unknown names give false.
func ParseOutcome(s string) (Outcome, bool) {
	for i, n := range outcomeNames {
		if n == s {
			return Outcome(i), true
		}
	}
	return 0, false
}

// Result is the record of one request, as the engine emits it and as
// requests.csv stores it.
type Result struct {
	// Start is when the request was meant to start. In the open model this
	// is the scheduled arrival, so a stalled server shows in Latency instead
	// of being hidden by coordinated omission; in the closed model it is the
	// moment the user sent it.
	Start time.Time
	// Name is the endpoint name (Locust's Name column): the step's name, or
	// its path when the step has none.
	Name string
	// Method is the HTTP method.
	Method string
	// Status is the HTTP status of the final response; 0 when none arrived.
	Status int
	// Latency runs from Start to the last byte of the body.
	Latency time.Duration
	// Connect is the time spent dialling (TCP and TLS); 0 on a reused
	// connection.
	Connect time.Duration
	// TTFB runs from the moment the request was written to the first byte
	// of the response.
	TTFB time.Duration
	// Bytes is the size of the response body.
	Bytes int64
	// Outcome says whether the request succeeded and, if not, how it failed.
	Outcome Outcome
	// Reason is the failure reason shown to people ("HTTP 500",
	// "login page returned: Too many failed login attempts. Try again later.");
	// empty when the request succeeded.
	Reason string
	// User is the number of the virtual user that sent the request (from 1).
	User int
	// Relogin marks the requests of a login made again after the user's
	// session was lost (a page sent it back to the login form): the user
	// logs in again as a person would, and these requests say so.
	Relogin bool
}

// Failed reports whether the request failed.
func (r *Result) Failed() bool { return r.Outcome != OK }

// End is when the response was complete.
func (r *Result) End() time.Time { return r.Start.Add(r.Latency) }

// Sample is one reading of one source (a probe) at one time. Metric keys are
// documented by each probe package; diagnosis reads them by name.
type Sample struct {
	// Time is when the reading was taken.
	Time time.Time `json:"t"`
	// Source names the probe: "postgres", "pgbouncer", "redis", "host",
	// "generator".
	Source string `json:"source"`
	// Values holds numeric readings by key.
	Values map[string]float64 `json:"values,omitempty"`
	// Info holds textual readings by key (settings, blocker descriptions).
	Info map[string]string `json:"info,omitempty"`
	// Err is set when the source could not be read; a refused probe is
	// evidence too.
	Err string `json:"error,omitempty"`
}

// Evidence is one event parsed from a server log: a line, or a multi-line
// block such as a stack trace, with what the signature catalog made of it.
type Evidence struct {
	// Time is the event's own timestamp, parsed from the log line; zero if
	// the line had none that could be read.
	Time time.Time `json:"t"`
	// Source is the log's name as the user gave it ("app-errors").
	Source string `json:"source"`
	// Signature is the id of the matching catalog entry, empty when none
	// matched.
	Signature string `json:"signature,omitempty"`
	// Class is the finding id the signature points at
	// ("db-pool-wait-timeout"), empty when unclassified.
	Class string `json:"class,omitempty"`
	// Level is the log level when the line carries one (ERROR, WARNING, LOG).
	Level string `json:"level,omitempty"`
	// Message is the event's headline: the log message of its first line.
	Message string `json:"message"`
	// Exception is the final exception line of a stack trace
	// ("psycopg.errors.ProtocolViolation: query_wait_timeout").
	Exception string `json:"exception,omitempty"`
	// Stack holds the frames of a stack trace, outermost first.
	Stack []string `json:"stack,omitempty"`
	// Fields holds attributes parsed from structured lines (method, path,
	// status, user of an access or auth log).
	Fields map[string]string `json:"fields,omitempty"`
	// Ref is where the event starts: "file:line".
	Ref string `json:"ref"`
}

// Status of a finding: how direct its evidence is.
const (
	// Confirmed: direct evidence (a log signature, a probe reading) names it.
	Confirmed = "confirmed"
	// Likely: indirect evidence (symptoms and arithmetic) points to it.
	Likely = "likely"
	// Possible: consistent with the data, not shown by it.
	Possible = "possible"
)

// EvidenceRef is a piece of evidence quoted in a finding.
type EvidenceRef struct {
	Source string    `json:"source"`
	Time   time.Time `json:"time,omitzero"`
	Text   string    `json:"text"`
	Ref    string    `json:"ref,omitempty"`
}

// Explains says which failed and slow requests a finding accounts for. A
// request is slow when it breaks its endpoint's latency threshold or,
// without one, is slowed by the load far beyond the endpoint's floor (its
// latency with little else in flight); an endpoint whose floor is already
// high is slow by itself and its slow requests are counted too.
type Explains struct {
	// Failures counts the failed requests the finding explains.
	Failures int `json:"failures"`
	// Slow counts the slow requests (that did not fail) it explains.
	Slow int `json:"slow"`
	// Endpoints names the endpoints of those requests.
	Endpoints []string `json:"endpoints"`
	// Latency says, where the evidence allows, how much of the slow
	// requests' latency the mechanism accounts for ("requests on
	// /dashboard/ waited on a row lock for a median of 4.1 s of their
	// 6.2 s").
	Latency string `json:"latency,omitempty"`
}

// Total returns the failures plus the slow requests explained.
func (e Explains) Total() int { return e.Failures + e.Slow }

// Finding is one named cause, with its evidence, fix and next experiment.
// The ids are the contract of DESIGN.md ("db-pool-wait-timeout", ...).
type Finding struct {
	ID         string   `json:"id"`
	Status     string   `json:"status"`
	Confidence float64  `json:"confidence"`
	Title      string   `json:"title"`
	Explains   Explains `json:"explains"`
	// CausedBy names the finding whose mechanism produced this one's
	// symptoms (sessions lost because the session store refused
	// connections); empty for a root cause. A root's Explains includes
	// the requests of the findings it caused.
	CausedBy       string        `json:"caused_by"`
	Evidence       []EvidenceRef `json:"evidence"`
	Fix            string        `json:"fix"`
	NextExperiment string        `json:"next_experiment"`
}

// RuledOut is a hypothesis the evidence excludes, and why.
type RuledOut struct {
	ID  string `json:"id"`
	Why string `json:"why"`
}

// ThresholdVerdict is one threshold of the scenario as the run ended, with
// the findings that explain it when it failed.
type ThresholdVerdict struct {
	// Threshold is as written: "[AUTH] Login POST: p95 < 500ms".
	Threshold string `json:"threshold"`
	Pass      bool   `json:"pass"`
	// Value is the measured value as text ("812ms", "3.20%").
	Value string `json:"value,omitempty"`
	// ExplainedBy lists the findings whose failed or slow requests are on
	// the threshold's endpoint; empty when it passed or nothing explains it.
	ExplainedBy []string `json:"explained_by,omitempty"`
}

// SlowEndpoint is the latency anatomy of one endpoint that had slow
// requests: its floor, the bar above which a request counts as slow, and
// whether it is slow by itself (its floor is already high) rather than
// slowed by the load.
type SlowEndpoint struct {
	Endpoint string        `json:"endpoint"`
	Requests int           `json:"requests"`
	Slow     int           `json:"slow"`
	Floor    time.Duration `json:"floor_ns"`
	Bar      time.Duration `json:"bar_ns"`
	Median   time.Duration `json:"median_ns"`
	P95      time.Duration `json:"p95_ns"`
	// BySelf is true when the endpoint is slow even with little else in
	// flight: its cost is its own, not the load's.
	BySelf bool `json:"by_self,omitempty"`
	// Streamed is true for an endpoint slow by itself because its response
	// streams (the first byte comes early, the rest takes long): its time
	// goes into sending, and its requests do not count as slow.
	Streamed bool `json:"streamed,omitempty"`
	// Threshold is the latency threshold that defines the bar, when one
	// does.
	Threshold string `json:"threshold,omitempty"`
}

// Diagnosis is the content of diagnosis.json.
type Diagnosis struct {
	Run      string     `json:"run"`
	Verdict  string     `json:"verdict"` // "pass" or "fail"
	Findings []Finding  `json:"findings"`
	RuledOut []RuledOut `json:"ruled_out"`
	// Thresholds are the scenario's thresholds with what explains each
	// failed one.
	Thresholds []ThresholdVerdict `json:"thresholds,omitempty"`
	// Slow lists the endpoints with slow requests.
	Slow []SlowEndpoint `json:"slow,omitempty"`
}

// Redact replaces the password of a DSN or URL with "xxxxx", so it can be
// written to meta.json or a log: "postgres://u:secret@h/db", a
// "?password=secret" query parameter, and the key=value form
// "host=h password=secret".
func Redact(dsn string) string {
	dsn = redactParam(dsn)
	i := strings.Index(dsn, "://")
	if i < 0 {
		return dsn
	}
	rest := dsn[i+3:]
	at := strings.LastIndex(rest, "@")
	if slash := strings.IndexByte(rest, '/'); slash >= 0 && slash < at {
		at = strings.LastIndex(rest[:slash], "@")
	}
	if at < 0 {
		return dsn
	}
	userinfo := rest[:at]
	colon := strings.IndexByte(userinfo, ':')
	if colon < 0 {
		return dsn
	}
	return dsn[:i+3] + userinfo[:colon] + ":xxxxx" + rest[at:]
}

// redactParam masks password=VALUE wherever it stands: a URL's query
// parameter or a key=value connection string (a value may be quoted).
func redactParam(s string) string {
	lower := strings.ToLower(s)
	var b strings.Builder
	last := 0
	for i := 0; ; {
		j := strings.Index(lower[i:], "password=")
		if j < 0 {
			break
		}
		start := i + j
		if start > 0 && !strings.ContainsRune("?& \t", rune(s[start-1])) {
			i = start + len("password=")
			continue
		}
		v := start + len("password=")
		end := v
		if end < len(s) && s[end] == '\'' {
			end++
			for end < len(s) && s[end] != '\'' {
				if s[end] == '\\' {
					end++
				}
				end++
			}
			end = min(end+1, len(s))
		} else {
			for end < len(s) && s[end] != '&' && s[end] != ' ' {
				end++
			}
		}
		b.WriteString(s[last:v])
		b.WriteString("xxxxx")
		last, i = end, end
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}
