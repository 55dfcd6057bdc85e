package load

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// Scenario is the scenario file as written (DESIGN.md "Scenario file").
// Unknown keys are an error. Compile turns it into a Plan.
type Scenario struct {
	Target         string              `yaml:"target"`
	Load           LoadSpec            `yaml:"load"`
	Think          string              `yaml:"think"`
	Timeout        string              `yaml:"timeout"`
	UsersFile      string              `yaml:"users_file"`
	UserAssignment string              `yaml:"user_assignment"`
	OnStart        []StepSpec          `yaml:"on_start"`
	Tasks          []TaskSpec          `yaml:"tasks"`
	Thresholds     map[string][]string `yaml:"thresholds"`
	Probes         ProbesSpec          `yaml:"probes"`
	Logs           []LogSpec           `yaml:"logs"`
	Headers        map[string]string   `yaml:"headers"`
	Insecure       bool                `yaml:"insecure_skip_verify"`
	// Hosts maps host names to IP addresses to dial instead (like curl's
	// --resolve): "lab.test: 127.0.0.1".
	Hosts map[string]string `yaml:"hosts"`
	// Relogin says whether a user whose session is lost (sent back to the
	// login page after logging in) runs on_start again on its next
	// iteration; default true. A user whose login fails always retries.
	Relogin *bool `yaml:"relogin"`
	// RequestsCSV says what requests.csv records: "all" (default), "off"
	// or "sample:P", e.g. sample:0.01 for one request in a hundred. The
	// summary, the Locust files and the diagnosis count every request.
	RequestsCSV string `yaml:"requests_csv"`

	file string    // where it was read from, for error positions
	ast  *ast.File // parsed document, for error positions
}

// LoadSpec is the load: closed (users, spawn_rate) or open (arrival_rate, max_users).
type LoadSpec struct {
	Users       int     `yaml:"users"`
	SpawnRate   float64 `yaml:"spawn_rate"`
	Duration    string  `yaml:"duration"`
	ArrivalRate string  `yaml:"arrival_rate"`
	MaxUsers    int     `yaml:"max_users"`
}

// TaskSpec is a weighted task: a list of steps run in order.
type TaskSpec struct {
	Name   string     `yaml:"name"`
	Weight int        `yaml:"weight"`
	Steps  []StepSpec `yaml:"steps"`
}

// StepSpec is one request.
type StepSpec struct {
	Name            string                 `yaml:"name"`
	Get             string                 `yaml:"get"`
	Post            string                 `yaml:"post"`
	Put             string                 `yaml:"put"`
	Patch           string                 `yaml:"patch"`
	Delete          string                 `yaml:"delete"`
	SubmitForm      *SubmitFormSpec        `yaml:"submit_form"`
	Form            map[string]string      `yaml:"form"`
	JSON            any                    `yaml:"json"`
	Body            string                 `yaml:"body"`
	Headers         map[string]string      `yaml:"headers"`
	Extract         map[string]ExtractSpec `yaml:"extract"`
	Expect          ExpectSpec             `yaml:"expect"`
	FollowRedirects *bool                  `yaml:"follow_redirects"`
}

// SubmitFormSpec submits a form of the previous response.
type SubmitFormSpec struct {
	Selector string            `yaml:"selector"`
	Fields   map[string]string `yaml:"fields"`
}

// ExtractSpec names where a value comes from; exactly one source is set.
type ExtractSpec struct {
	Regex  string `yaml:"regex"`
	Cookie string `yaml:"cookie"`
	JSON   string `yaml:"json"`
	CSS    string `yaml:"css"`
	Attr   string `yaml:"attr"`
}

// ExpectSpec is what makes a response a success.
type ExpectSpec struct {
	Status          []int  `yaml:"status"`
	NotLoginPage    bool   `yaml:"not_login_page"`
	BodyContains    string `yaml:"body_contains"`
	BodyNotContains string `yaml:"body_not_contains"`
	RedirectNotTo   string `yaml:"redirect_not_to"`
}

// ProbesSpec names the servers to watch during the run.
type ProbesSpec struct {
	Postgres  string `yaml:"postgres"`
	PgBouncer string `yaml:"pgbouncer"`
	Redis     string `yaml:"redis"`
	// Prometheus is a metrics URL exporting PgBouncer's pools as
	// pgbouncer_exporter names them, when the admin console is out of reach.
	Prometheus string `yaml:"prometheus"`
	Host       bool   `yaml:"host"`
	Pid        int    `yaml:"pid"`
}

// LogSpec is a server log to tail during the run.
type LogSpec struct {
	Name string `yaml:"name"`
	Path string `yaml:"path"`
}

// ReadScenario reads and strictly parses a scenario file. Errors name the
// file, line and column.
func ReadScenario(path string) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("scenario: %w", err)
	}
	return ParseScenario(path, data)
}

// ParseScenario parses a scenario; name is used in error messages.
func ParseScenario(name string, data []byte) (*Scenario, error) {
	sc := &Scenario{file: name}
	if err := yaml.UnmarshalWithOptions(data, sc, yaml.DisallowUnknownField()); err != nil {
		var ye yaml.Error
		if errors.As(err, &ye) && ye.GetToken() != nil {
			p := ye.GetToken().Position
			return nil, fmt.Errorf("%s:%d:%d: %s", name, p.Line, p.Column, ye.GetMessage())
		}
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	sc.file = name
	if f, err := parser.ParseBytes(data, 0); err == nil {
		sc.ast = f
	}
	return sc, nil
}

// Pos returns "file:line:col" of the value at a YAML path such as
// "$.load.duration" or "$.tasks[0].steps[1].get", or just the file name when
// the path is not in the document (a value given by a flag).
func (sc *Scenario) Pos(path string) string {
	if sc == nil {
		return "flags"
	}
	if sc.ast != nil {
		if p, err := yaml.PathString(path); err == nil {
			if n, err := p.FilterFile(sc.ast); err == nil && n != nil && n.GetToken() != nil {
				t := n.GetToken().Position
				return fmt.Sprintf("%s:%d:%d", sc.file, t.Line, t.Column)
			}
		}
	}
	if sc.file == "" {
		return "flags"
	}
	return sc.file
}

// File is the path the scenario was read from ("" for the quick form).
func (sc *Scenario) File() string { return sc.file }

// ParseRate parses an arrival rate: "50/s", "300/m", "2/1s", "10" (per second).
func ParseRate(s string) (float64, error) {
	s = strings.TrimSpace(s)
	num, unit, found := strings.Cut(s, "/")
	n, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("rate %q: want a positive number per time unit, e.g. 50/s", s)
	}
	if !found {
		return n, nil
	}
	unit = strings.TrimSpace(unit)
	var per time.Duration
	switch unit {
	case "s", "sec", "second":
		per = time.Second
	case "m", "min", "minute":
		per = time.Minute
	case "h", "hour":
		per = time.Hour
	default:
		d, err := time.ParseDuration(unit)
		if err != nil || d <= 0 {
			return 0, fmt.Errorf("rate %q: unknown unit %q (use s, m, h or a duration)", s, unit)
		}
		per = d
	}
	return n / per.Seconds(), nil
}

// ParseThink parses "1s" or "1s..3s".
func ParseThink(s string) (min, max time.Duration, err error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, 0, nil
	}
	a, b, isRange := strings.Cut(s, "..")
	if min, err = parseDuration(a); err != nil {
		return 0, 0, fmt.Errorf("think %q: %w", s, err)
	}
	max = min
	if isRange {
		if max, err = parseDuration(b); err != nil {
			return 0, 0, fmt.Errorf("think %q: %w", s, err)
		}
	}
	if max < min {
		return 0, 0, fmt.Errorf("think %q: the maximum is below the minimum", s)
	}
	return min, max, nil
}

// parseDuration is time.ParseDuration that also takes plain seconds ("30").
func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return time.Duration(f * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("bad duration %q (use 500ms, 10s, 2m)", s)
	}
	return d, nil
}

// ParseDuration parses a duration as the scenario file and flags take it:
// "90s", "2m", "1h30m", or plain seconds.
func ParseDuration(s string) (time.Duration, error) { return parseDuration(s) }
