package runner

import (
	"os"
	"path/filepath"
	"strings"
	"time"

	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/load"
	"github.com/stampede-load/stampede/internal/rundir"
	"github.com/stampede-load/stampede/internal/secret"
)

// LocustPrefix is the prefix of the Locust-compatible CSVs inside a run
// directory: locust_stats.csv, locust_stats_history.csv,
// locust_failures.csv and locust_exceptions.csv.
const LocustPrefix = "locust"

// newMeta returns meta.json of a run starting at start, marked partial
// until the run ends.
func newMeta(dir string, plan *load.Plan, o Options, start time.Time) *rundir.Meta {
	host, _ := os.Hostname()
	meta := &rundir.Meta{
		Tool: "stampede", Version: stampede.Version, Run: filepath.Base(dir), Target: secret.Mask(stampede.Redact(plan.Target.String())),
		Host: host, Command: RedactArgs(o.Command), Start: start, Partial: true,
		Load: loadFacts(plan), Probes: o.Probes.Names(), RequestsCSV: o.Requests.String(),
	}
	if o.Segment != nil {
		sg := *o.Segment
		sg.StartAt = o.StartAt
		meta.Segment = &sg
	}
	if o.Scenario != nil && o.Scenario.File() != "" {
		meta.Scenario = redactScenario(o.Scenario)
	}
	for _, l := range o.Logs {
		meta.Logs = append(meta.Logs, rundir.LogRef{Name: l.Name, Path: l.Path})
	}
	for _, t := range o.Thresholds {
		if meta.Thresholds == nil {
			meta.Thresholds = map[string][]string{}
		}
		meta.Thresholds[t.Endpoint] = append(meta.Thresholds[t.Endpoint], t.Expr)
	}
	return meta
}

// loadFacts are the facts of the plan's load that meta.json keeps for the
// diagnosis.
func loadFacts(p *load.Plan) rundir.LoadFacts {
	lf := rundir.LoadFacts{Model: p.Model.String(), Users: p.Users, Duration: p.Duration.String(),
		Accounts: p.Accounts(), Assignment: string(p.Assignment), SourceIPs: max(len(p.LocalIPs.Used(p.Users)), 1), LoginEndpoints: p.LoginSteps()}
	if p.Model == load.Open {
		lf.ArrivalRate = p.ArrivalRate
	} else {
		lf.SpawnRate = p.SpawnRate
	}
	if p.ThinkMax > 0 {
		lf.ThinkMin, lf.ThinkMax = p.ThinkMin.String(), p.ThinkMax.String()
	}
	if len(p.Rows) == 0 {
		lf.Assignment = ""
	}
	return lf
}

// redactScenario returns the scenario for meta.json with DSN and URL
// passwords masked, and the values of fields, headers, JSON keys and query
// parameters that look like secrets replaced.
func redactScenario(sc *load.Scenario) any {
	c := *sc
	c.Target = secret.Mask(stampede.Redact(c.Target))
	c.Probes.Postgres = secret.Mask(stampede.Redact(c.Probes.Postgres))
	c.Probes.PgBouncer = secret.Mask(stampede.Redact(c.Probes.PgBouncer))
	c.Probes.Redis = secret.Mask(stampede.Redact(c.Probes.Redis))
	var proms []string
	for _, u := range strings.Fields(c.Probes.Prometheus) { // one URL or several
		proms = append(proms, secret.Mask(stampede.Redact(u)))
	}
	c.Probes.Prometheus = strings.Join(proms, " ")
	red := func(steps []load.StepSpec) []load.StepSpec {
		out := make([]load.StepSpec, len(steps))
		for i, s := range steps {
			if s.SubmitForm != nil {
				sf := *s.SubmitForm
				sf.Fields = redactFields(sf.Fields)
				s.SubmitForm = &sf
			}
			s.Form = redactFields(s.Form)
			s.Headers = redactFields(s.Headers)
			s.JSON = redactJSON("", s.JSON)
			for _, u := range []*string{&s.Get, &s.Post, &s.Put, &s.Patch, &s.Delete, &s.Body} {
				*u = secret.Mask(*u)
			}
			out[i] = s
		}
		return out
	}
	c.OnStart = red(c.OnStart)
	c.Tasks = append([]load.TaskSpec(nil), c.Tasks...)
	for i := range c.Tasks {
		c.Tasks[i].Steps = red(c.Tasks[i].Steps)
	}
	c.Headers = redactFields(c.Headers)
	return &c
}

// redactFields masks the values of fields and headers whose names look
// like secrets, unless the value is a template ({{user.password}}), which
// names the secret without holding it.
func redactFields(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		if secret.IsKey(k) && !strings.Contains(v, "{{") {
			v = secret.Marker
		}
		out[k] = secret.Mask(v)
	}
	return out
}

// redactJSON returns a copy of a step's json: body with the values of keys
// that look like secrets replaced, unless they are templates.
func redactJSON(key string, v any) any {
	switch x := v.(type) {
	case string:
		if secret.IsKey(key) && !strings.Contains(x, "{{") {
			return secret.Marker
		}
		return secret.Mask(x)
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, vv := range x {
			out[k] = redactJSON(k, vv)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, vv := range x {
			out[i] = redactJSON(key, vv)
		}
		return out
	}
	return v
}

// RedactArgs masks DSN passwords in a command line, in arguments and in
// --flag=value pairs, whatever else package secret's patterns find (a
// token in a --url's query), and the whole value of a flag whose name says
// it holds a secret (--ui-token T, --password=P).
func RedactArgs(args []string) []string {
	if args == nil {
		return nil
	}
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = secret.Mask(stampede.Redact(a))
		if k, v, ok := strings.Cut(a, "="); ok && strings.HasPrefix(k, "-") {
			out[i] = k + "=" + secret.Mask(stampede.Redact(v))
			if secretFlag(k) {
				out[i] = k + "=" + secret.Marker
			}
		} else if i > 0 && secretFlag(args[i-1]) && !strings.Contains(args[i-1], "=") {
			out[i] = secret.Marker
		}
	}
	return out
}

// secretFlag reports whether a flag's name says its value is a secret.
func secretFlag(a string) bool {
	if !strings.HasPrefix(a, "-") {
		return false
	}
	name := strings.ToLower(strings.TrimLeft(a, "-"))
	for _, w := range []string{"token", "password", "passwd", "secret", "apikey", "api-key", "api_key"} {
		if strings.Contains(name, w) {
			return true
		}
	}
	return false
}
