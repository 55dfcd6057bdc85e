package runner

import (
	"os"
	"path/filepath"
	"strings"
	"time"

	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/load"
	"github.com/stampede-load/stampede/internal/rundir"
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
		Tool: "stampede", Version: stampede.Version, Run: filepath.Base(dir), Target: stampede.Redact(plan.Target.String()),
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
		Accounts: p.Accounts(), Assignment: string(p.Assignment), SourceIPs: 1, LoginEndpoints: p.LoginSteps()}
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

// redactScenario returns the scenario for meta.json with DSN passwords
// masked and form fields that look like secrets replaced.
func redactScenario(sc *load.Scenario) any {
	c := *sc
	c.Probes.Postgres = stampede.Redact(c.Probes.Postgres)
	c.Probes.PgBouncer = stampede.Redact(c.Probes.PgBouncer)
	c.Probes.Redis = stampede.Redact(c.Probes.Redis)
	c.Probes.Prometheus = stampede.Redact(c.Probes.Prometheus)
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
		lk := strings.ToLower(k)
		if (strings.Contains(lk, "pass") || strings.Contains(lk, "secret") || strings.Contains(lk, "token") ||
			strings.Contains(lk, "authorization") || strings.Contains(lk, "cookie")) && !strings.Contains(v, "{{") {
			v = "xxxxx"
		}
		out[k] = v
	}
	return out
}

// RedactArgs masks DSN passwords in a command line, in arguments and in
// --flag=value pairs.
func RedactArgs(args []string) []string {
	if args == nil {
		return nil
	}
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = stampede.Redact(a)
		if k, v, ok := strings.Cut(a, "="); ok && strings.HasPrefix(k, "-") {
			out[i] = k + "=" + stampede.Redact(v)
		}
	}
	return out
}
