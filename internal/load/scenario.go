package load

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// Scenario is the scenario file as written (DESIGN.md "Scenario file").
// Unknown keys are an error. Compile turns it into a Plan.
type Scenario struct {
	Target  string   `yaml:"target"`
	Load    LoadSpec `yaml:"load"`
	Think   string   `yaml:"think"`
	Timeout string   `yaml:"timeout"`
	// IdleTimeout closes a user's kept-alive connection once it has been
	// idle this long, as browsers and servers do ("90s", the default; "0"
	// never): with long think times, users then hold sockets only while
	// they browse.
	IdleTimeout    string              `yaml:"idle_timeout"`
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
	// LocalIPs are the source addresses the users dial from, in k6's
	// --local-ips syntax (see ParseLocalIPs): "127.0.0.1-127.0.0.8".
	LocalIPs string `yaml:"local_ips"`
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
// Decode "url" URL-decodes the value found (a cookie such as Laravel's
// XSRF-TOKEN, which the page's script decodes before sending it).
type ExtractSpec struct {
	Regex  string `yaml:"regex"`
	Cookie string `yaml:"cookie"`
	JSON   string `yaml:"json"`
	CSS    string `yaml:"css"`
	Attr   string `yaml:"attr"`
	Header string `yaml:"header"`
	Decode string `yaml:"decode"`
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
	// Prometheus is an exporter's metrics URL, or several separated by
	// spaces: pgbouncer_exporter (when the admin console is out of
	// reach), node_exporter, process-exporter, postgres_exporter.
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

// Limits on a scenario file: its size, and how many values its aliases
// may expand to (a "billion laughs" of nested aliases would otherwise
// take the machine's memory).
const (
	maxScenarioBytes = 4 << 20
	maxScenarioNodes = 100_000
)

// ParseScenario parses a scenario; name is used in error messages. Every
// error names the file, the line and column, and the field:
// "s.yaml:3:10: load.users: want an integer, got a string".
func ParseScenario(name string, data []byte) (*Scenario, error) {
	if len(data) > maxScenarioBytes {
		return nil, fmt.Errorf("%s: %d bytes: a scenario is at most %d (is it the right file?)", name, len(data), maxScenarioBytes)
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // a byte-order mark
	if err := checkText(name, data); err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("%s: empty: want a scenario (target, load, on_start or tasks)", name)
	}
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		return nil, yamlError(name, err, nil)
	}
	if err := checkAliases(name, f); err != nil {
		return nil, err
	}
	docs := 0
	for _, d := range f.Docs {
		if d.Body == nil || d.Body.Type() == ast.DirectiveType {
			continue
		}
		if docs++; docs > 1 {
			line, col := nodePos(d.Body)
			return nil, fmt.Errorf("%s:%d:%d: a scenario is one YAML document; another starts here", name, line, col)
		}
	}
	if docs == 0 {
		return nil, fmt.Errorf("%s: empty (comments only): want a scenario (target, load, on_start or tasks)", name)
	}
	if err := checkTags(name, f); err != nil {
		return nil, err
	}
	sc := &Scenario{file: name}
	if err := decode(data, sc); err != nil {
		return nil, yamlError(name, err, f)
	}
	sc.file, sc.ast = name, f
	return sc, nil
}

// decode decodes a scenario strictly. The YAML decoder has panicked on
// input it parsed (a tag on an empty node, found by FuzzParseScenario):
// such a panic is an error about the file, not a crash.
func decode(data []byte, sc *Scenario) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("the YAML decoder failed on this file (%v)", r)
		}
	}()
	return yaml.UnmarshalWithOptions(data, sc, yaml.DisallowUnknownField())
}

// checkTags rejects YAML tags (!!binary, !custom): a scenario has no use
// for them, and the decoder mishandles some.
func checkTags(name string, f *ast.File) error {
	var tag ast.Node
	for _, d := range f.Docs {
		ast.Walk(visitFunc(func(n ast.Node) bool {
			if n.Type() == ast.TagType && tag == nil {
				tag = n
			}
			return tag == nil
		}), d)
	}
	if tag == nil {
		return nil
	}
	line, col := nodePos(tag)
	msg := fmt.Sprintf("YAML tag %s: a scenario's values are plain strings, numbers, lists and mappings", nodeText(tag))
	if field := strings.TrimPrefix(strings.TrimPrefix(tag.GetPath(), "$"), "."); field != "" {
		msg = field + ": " + msg
	}
	return fmt.Errorf("%s:%d:%d: %s", name, line, col, msg)
}

// visitFunc is an ast.Visitor that goes on while the function says so.
type visitFunc func(ast.Node) bool

func (f visitFunc) Visit(n ast.Node) ast.Visitor {
	if n == nil {
		return nil
	}
	if f(n) {
		return f
	}
	return nil
}

// checkText rejects a file that is not UTF-8 text, naming where.
func checkText(name string, data []byte) error {
	for i := 0; i < len(data); {
		r, n := utf8.DecodeRune(data[i:])
		what := ""
		switch {
		case r == utf8.RuneError && n == 1:
			what = "invalid UTF-8"
		case r == 0:
			what = "a NUL byte"
		}
		if what != "" {
			line := 1 + bytes.Count(data[:i], []byte("\n"))
			col := 1 + utf8.RuneCount(data[bytes.LastIndexByte(data[:i], '\n')+1:i])
			return fmt.Errorf("%s:%d:%d: %s: a scenario is YAML text (is it the right file?)", name, line, col, what)
		}
		i += n
	}
	return nil
}

// yamlError turns an error of the YAML parser or decoder into one that
// names the file, position and field, in the scenario's words rather than
// Go's.
func yamlError(name string, err error, f *ast.File) error {
	var ye yaml.Error
	if !errors.As(err, &ye) || ye.GetToken() == nil {
		return fmt.Errorf("%s: %v", name, err)
	}
	p := ye.GetToken().Position
	msg := ye.GetMessage()
	field := ""
	if f != nil {
		field = fieldAt(f, p.Line, p.Column)
	}
	if m := unmarshalMsg.FindStringSubmatch(msg); m != nil {
		msg = "want " + kindName(m[2]) + ", got " + kindName(m[1])
		if strings.Contains(m[3], "overflow") {
			msg = "number out of range"
		}
	} else if m := unknownMsg.FindStringSubmatch(msg); m != nil && field != "" {
		parent := field[:max(strings.LastIndexByte(field, '.'), 0)]
		msg = "unknown field"
		if known := knownFields(parent); len(known) > 0 {
			if near := nearest(m[1], known); near != "" {
				msg += " (did you mean " + near + "?)"
			}
			msg += "; known here: " + strings.Join(known, ", ")
		}
	}
	if field != "" {
		return fmt.Errorf("%s:%d:%d: %s: %s", name, p.Line, p.Column, field, msg)
	}
	return fmt.Errorf("%s:%d:%d: %s", name, p.Line, p.Column, msg)
}

var (
	unmarshalMsg = regexp.MustCompile(`^cannot unmarshal (.+?) into Go (?:struct field \S+|value) of type (\S+)(.*)$`)
	unknownMsg   = regexp.MustCompile(`^unknown field "(.*)"$`)
)

// kindName says a Go type or a decoder's value in YAML's words.
func kindName(t string) string {
	switch {
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "uint"):
		return "an integer"
	case strings.HasPrefix(t, "float"):
		return "a number"
	case t == "string":
		return "a string"
	case t == "bool":
		return "true or false"
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.HasPrefix(t, "map["), strings.HasPrefix(t, "load."), strings.HasPrefix(t, "*load."):
		return "a mapping"
	}
	if _, err := strconv.ParseFloat(t, 64); err == nil {
		return "the number " + t
	}
	return t
}

// fieldAt returns the field of the node at line:col as a path
// ("load.users", "tasks[0].steps[1].get"); "" when none is there.
func fieldAt(f *ast.File, line, col int) string {
	v := &nodeAt{line: line, col: col}
	for _, d := range f.Docs {
		ast.Walk(v, d)
	}
	path := strings.TrimPrefix(strings.TrimPrefix(v.path, "$"), ".")
	return path
}

type nodeAt struct {
	line, col int
	path      string
}

func (v *nodeAt) Visit(n ast.Node) ast.Visitor {
	if n == nil {
		return nil
	}
	if line, col := nodePos(n); line == v.line && col == v.col {
		if p := n.GetPath(); len(p) > len(v.path) {
			v.path = p
		}
	}
	return v
}

// knownFields lists the YAML keys of the struct at path ("", "load",
// "tasks[0].steps[2].expect"); none when path is not a struct.
func knownFields(path string) []string {
	t := reflect.TypeOf(Scenario{})
	for _, part := range strings.Split(path, ".") {
		if part == "" {
			continue
		}
		key, idx, _ := strings.Cut(part, "[")
		f, ok := fieldByTag(t, key)
		if !ok {
			return nil
		}
		t = f
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		for ; idx != ""; _, idx, _ = strings.Cut(idx, "[") {
			if t.Kind() != reflect.Slice {
				return nil
			}
			t = t.Elem()
		}
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	var out []string
	for i := 0; i < t.NumField(); i++ {
		if tag := t.Field(i).Tag.Get("yaml"); tag != "" {
			out = append(out, strings.Split(tag, ",")[0])
		}
	}
	return out
}

func fieldByTag(t reflect.Type, key string) (reflect.Type, bool) {
	if t.Kind() != reflect.Struct {
		return nil, false
	}
	for i := 0; i < t.NumField(); i++ {
		if strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0] == key {
			return t.Field(i).Type, true
		}
	}
	return nil, false
}

// nearest returns the known key within two edits of key, if one is.
func nearest(key string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := editDistance(key, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := prev[j-1]
			if a[i-1] != b[j-1] {
				c++
			}
			cur[j] = min(c, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// checkAliases bounds what the aliases of a document expand to, and
// rejects an alias that contains itself.
func checkAliases(name string, f *ast.File) error {
	anchors := map[string]ast.Node{}
	for _, d := range f.Docs {
		ast.Walk(anchorCollector(anchors), d)
	}
	c := &aliasCounter{anchors: anchors, sizes: map[string]int{}, active: map[string]bool{}}
	for _, d := range f.Docs {
		if _, err := c.size(d); err != nil {
			return fmt.Errorf("%s:%v", name, err)
		}
	}
	return nil
}

type anchorCollector map[string]ast.Node

func (a anchorCollector) Visit(n ast.Node) ast.Visitor {
	if an, ok := n.(*ast.AnchorNode); ok && an.Name != nil {
		a[nodeText(an.Name)] = an.Value
	}
	return a
}

type aliasCounter struct {
	anchors map[string]ast.Node
	sizes   map[string]int
	active  map[string]bool
	total   int
}

// size returns the number of values n expands to, counting each alias as
// the values of its anchor.
func (c *aliasCounter) size(n ast.Node) (int, error) {
	if n == nil {
		return 0, nil
	}
	if c.total > maxScenarioNodes {
		line, col := nodePos(n)
		return 0, fmt.Errorf("%d:%d: the aliases expand to more than %d values (a YAML bomb?)", line, col, maxScenarioNodes)
	}
	c.total++
	sum := func(ns ...ast.Node) (int, error) {
		t := 1
		for _, x := range ns {
			k, err := c.size(x)
			if err != nil {
				return 0, err
			}
			t += k
		}
		return t, nil
	}
	switch x := n.(type) {
	case *ast.DocumentNode:
		return sum(x.Body)
	case *ast.MappingNode:
		ns := make([]ast.Node, 0, 2*len(x.Values))
		for _, v := range x.Values {
			ns = append(ns, v.Key, v.Value)
		}
		return sum(ns...)
	case *ast.MappingValueNode:
		return sum(x.Key, x.Value)
	case *ast.MappingKeyNode:
		return sum(x.Value)
	case *ast.SequenceNode:
		return sum(x.Values...)
	case *ast.AnchorNode:
		return sum(x.Value)
	case *ast.TagNode:
		return sum(x.Value)
	case *ast.AliasNode:
		aname := nodeText(x.Value)
		if k, ok := c.sizes[aname]; ok {
			c.total += k
			return k, nil
		}
		if c.active[aname] {
			line, col := nodePos(x)
			return 0, fmt.Errorf("%d:%d: alias *%s refers to itself", line, col, aname)
		}
		target, ok := c.anchors[aname]
		if !ok {
			return 1, nil // the decoder names it
		}
		c.active[aname] = true
		k, err := c.size(target)
		delete(c.active, aname)
		if err != nil {
			return 0, err
		}
		c.sizes[aname] = k
		return k, nil
	}
	return 1, nil
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

// nodePos returns the line and column of a node's token; 0, 0 when it has
// none (the AST of a malformed file can hold nodes whose GetToken panics).
func nodePos(n ast.Node) (line, col int) {
	defer func() { _ = recover() }()
	if n == nil {
		return 0, 0
	}
	if tk := n.GetToken(); tk != nil && tk.Position != nil {
		return tk.Position.Line, tk.Position.Column
	}
	return 0, 0
}

// nodeText returns the text of a node's token, "" when it has none.
func nodeText(n ast.Node) string {
	defer func() { _ = recover() }()
	if n == nil {
		return ""
	}
	if tk := n.GetToken(); tk != nil {
		return tk.Value
	}
	return ""
}
