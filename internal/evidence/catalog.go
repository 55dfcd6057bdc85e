package evidence

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"regexp"
	"regexp/syntax"
	"strings"

	"github.com/goccy/go-yaml"
)

// builtinSignatures is the catalog shipped with stampede: signatures.yaml in
// this directory. Its format is documented at the top of that file and on
// Signature.
//
//go:embed signatures.yaml
var builtinSignatures []byte

// Sides of a signature: where its text is seen.
const (
	// SideServer marks a text written to a server's log (PgBouncer,
	// PostgreSQL, gunicorn, nginx, the app's error log).
	SideServer = "server"
	// SideClient marks a text seen by a client: a driver's error message
	// (often logged by the app too), or a response body seen by the load
	// generator.
	SideClient = "client"
)

// Scopes of a signature: which part of an event it is matched against.
const (
	// ScopeMessage matches the headline, the exception lines and the other
	// text lines of an event (the default).
	ScopeMessage = "message"
	// ScopeStack matches the stack frames only: a frame in pbkdf2_hmac says
	// more about a worker timeout than its headline does.
	ScopeStack = "stack"
)

// Signature is one entry of the catalog: a known text and the finding it
// points at. In the catalog file (YAML or JSON) the keys are the lower-case
// names below.
type Signature struct {
	// ID names the signature ("pgbouncer-query-wait-timeout"); unique in a
	// catalog.
	ID string `yaml:"id" json:"id"`
	// Class is the finding id the signature is evidence for
	// ("db-pool-wait-timeout"), one of DESIGN.md's diagnosis vocabulary.
	Class string `yaml:"class" json:"class"`
	// Side is SideServer or SideClient.
	Side string `yaml:"side" json:"side"`
	// Literal is a text matched as a substring, ignoring ASCII case.
	Literal string `yaml:"literal,omitempty" json:"literal,omitempty"`
	// Any lists texts of which any one, as a substring with ASCII case
	// ignored, is a match: a faster way to write a regex made only of
	// alternatives.
	Any []string `yaml:"any,omitempty" json:"any,omitempty"`
	// Regex is a Go regular expression (RE2 syntax). Exactly one of
	// Literal, Any and Regex is set, or none when Fields alone decide.
	Regex string `yaml:"regex,omitempty" json:"regex,omitempty"`
	// Keywords are texts of which at least one occurs in every match of
	// Regex (ASCII case ignored). When empty they are derived from the
	// regex; a regex without a literal part of three bytes or more needs
	// them.
	Keywords []string `yaml:"keywords,omitempty" json:"keywords,omitempty"`
	// Fields are conditions on the event's parsed fields: field name →
	// regex the whole value must match (e.g. status: "50[24]").
	Fields map[string]string `yaml:"fields,omitempty" json:"fields,omitempty"`
	// Scope is ScopeMessage (default) or ScopeStack.
	Scope string `yaml:"scope,omitempty" json:"scope,omitempty"`
	// Generic marks a weak signature (an HTTP 500, a bare SQLSTATE): it is
	// used only when no other signature matches the event.
	Generic bool `yaml:"generic,omitempty" json:"generic,omitempty"`
	// Description says what the text means, for people.
	Description string `yaml:"description" json:"description"`

	re     *regexp.Regexp
	fields []fieldCond
	index  int
}

type fieldCond struct {
	name string
	re   *regexp.Regexp
}

// catalogFile is the layout of a catalog file.
type catalogFile struct {
	Signatures []Signature `yaml:"signatures" json:"signatures"`
}

// Catalog is a compiled, ordered list of signatures. Order matters: when
// several signatures of the same strength match the same part of an event,
// the first one wins, so a user's own entries (which come first) override
// the built-in ones. A Catalog is safe for concurrent use.
type Catalog struct {
	sigs []*Signature
	// msgKeys and stackKeys find keywords; keyOwner maps a keyword id to
	// its signature's index.
	msgKeys, stackKeys   *keywordSet
	msgOwner, stackOwner []int
	fieldOnly            []int // signatures matched by fields alone
	needsFields          bool
	byID                 map[string]*Signature
	hasStackSig          bool
}

// DefaultCatalog returns the built-in catalog. It panics if the embedded
// file is broken, which the package's tests rule out.
func DefaultCatalog() *Catalog {
	c, err := LoadCatalog(nil)
	if err != nil {
		panic(err)
	}
	return c
}

// LoadCatalog returns the built-in catalog extended by the user's own
// catalog files (YAML or JSON, same format as signatures.yaml), read in
// order. The user's entries come first, so they win over the built-in ones;
// a user's entry with a built-in id replaces it.
func LoadCatalog(userFiles []string) (*Catalog, error) {
	var sigs []Signature
	for _, f := range userFiles {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("signatures: %w", err)
		}
		s, err := ParseCatalog(f, data)
		if err != nil {
			return nil, err
		}
		sigs = append(sigs, s...)
	}
	builtin, err := ParseCatalog("signatures.yaml (built in)", builtinSignatures)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, s := range sigs {
		seen[s.ID] = true
	}
	for _, s := range builtin {
		if !seen[s.ID] {
			sigs = append(sigs, s)
		}
	}
	return NewCatalog(sigs)
}

// ParseCatalog reads a catalog file's content (YAML, of which JSON is a
// subset) and checks every entry. Errors name the file, and the line when
// the parser knows it. name is only used in errors.
func ParseCatalog(name string, data []byte) ([]Signature, error) {
	var f catalogFile
	if err := yaml.UnmarshalWithOptions(data, &f, yaml.Strict()); err != nil {
		return nil, fmt.Errorf("signatures %s: %s", name, oneLineYAMLError(err))
	}
	seen := map[string]int{}
	for i := range f.Signatures {
		s := &f.Signatures[i]
		where := fmt.Sprintf("signatures %s: entry %d", name, i+1)
		if line := entryLine(data, i); line > 0 {
			where = fmt.Sprintf("signatures %s:%d", name, line)
		}
		if s.ID != "" {
			where += " (" + s.ID + ")"
		}
		if err := s.compile(); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if j, dup := seen[s.ID]; dup {
			return nil, fmt.Errorf("%s: duplicate id, first used by entry %d", where, j+1)
		}
		seen[s.ID] = i
	}
	return f.Signatures, nil
}

// oneLineYAMLError turns the YAML library's error into "line N: message".
func oneLineYAMLError(err error) string {
	msg := yaml.FormatError(err, false, false)
	// The library prints "[3:5] message" followed by the source excerpt.
	first, _, _ := strings.Cut(msg, "\n")
	if strings.HasPrefix(first, "[") {
		if end := strings.IndexByte(first, ']'); end > 0 {
			pos := first[1:end]
			line, _, _ := strings.Cut(pos, ":")
			return "line " + line + ": " + strings.TrimSpace(first[end+1:])
		}
	}
	return strings.TrimSpace(first)
}

// entryLine finds the line of the i-th list item under "signatures:" (for
// error messages only; 0 when the file is not in the usual block layout).
func entryLine(data []byte, i int) int {
	n := -1
	for ln, line := range bytes.Split(data, []byte("\n")) {
		t := bytes.TrimLeft(line, " ")
		if bytes.HasPrefix(t, []byte("- ")) || bytes.Equal(t, []byte("-")) {
			if len(line)-len(t) <= 4 {
				n++
				if n == i {
					return ln + 1
				}
			}
		}
	}
	return 0
}

// compile checks the entry and prepares its matchers.
func (s *Signature) compile() error {
	switch {
	case s.ID == "":
		return errors.New("missing id")
	case s.Class == "":
		return errors.New("missing class")
	case s.Description == "":
		return errors.New("missing description")
	case btoi(s.Literal != "")+btoi(s.Regex != "")+btoi(len(s.Any) > 0) > 1:
		return errors.New("literal, any and regex are exclusive")
	case s.Literal == "" && s.Regex == "" && len(s.Any) == 0 && len(s.Fields) == 0:
		return errors.New("needs a literal, any, a regex or fields")
	}
	for _, a := range s.Any {
		if len(a) < 2 {
			return fmt.Errorf("any %q: too short", a)
		}
	}
	switch s.Side {
	case SideServer, SideClient:
	default:
		return fmt.Errorf("side %q: want %q or %q", s.Side, SideServer, SideClient)
	}
	switch s.Scope {
	case "":
		s.Scope = ScopeMessage
	case ScopeMessage, ScopeStack:
	default:
		return fmt.Errorf("scope %q: want %q or %q", s.Scope, ScopeMessage, ScopeStack)
	}
	if s.Regex != "" {
		re, err := regexp.Compile(s.Regex)
		if err != nil {
			return fmt.Errorf("regex: %w", err)
		}
		s.re = re
		if len(s.Keywords) == 0 {
			s.Keywords = regexKeywords(s.Regex)
			if len(s.Keywords) == 0 {
				return errors.New("regex has no literal of 3 bytes or more: give keywords")
			}
		}
		for _, k := range s.Keywords {
			if len(k) < 2 {
				return fmt.Errorf("keyword %q: too short", k)
			}
		}
	} else if len(s.Keywords) > 0 {
		return errors.New("keywords go with a regex")
	}
	s.fields = s.fields[:0]
	for name, expr := range s.Fields {
		re, err := regexp.Compile("^(?:" + expr + ")$")
		if err != nil {
			return fmt.Errorf("fields.%s: %w", name, err)
		}
		s.fields = append(s.fields, fieldCond{name, re})
	}
	return nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// regexKeywords derives prefilter keywords from a regex: a set of literals
// one of which occurs in every match, or nil when none of 3 bytes or more
// can be found.
func regexKeywords(expr string) []string {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil
	}
	ks := requiredLiterals(re.Simplify())
	if minLen(ks) < 3 {
		return nil
	}
	for i, k := range ks {
		ks[i] = strings.ToLower(k)
	}
	return ks
}

// requiredLiterals returns literals one of which every match contains.
func requiredLiterals(re *syntax.Regexp) []string {
	switch re.Op {
	case syntax.OpLiteral:
		return []string{string(re.Rune)}
	case syntax.OpCapture, syntax.OpPlus:
		return requiredLiterals(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return requiredLiterals(re.Sub[0])
		}
	case syntax.OpAlternate:
		var all []string
		for _, sub := range re.Sub {
			ks := requiredLiterals(sub)
			if len(ks) == 0 {
				return nil
			}
			all = append(all, ks...)
		}
		return all
	case syntax.OpConcat:
		// Adjacent literals join into one longer literal; otherwise keep
		// the child set whose shortest keyword is longest.
		var best []string
		var run strings.Builder
		flush := func() {
			if run.Len() > 0 {
				if c := []string{run.String()}; minLen(c) > minLen(best) {
					best = c
				}
				run.Reset()
			}
		}
		for _, sub := range re.Sub {
			if sub.Op == syntax.OpLiteral {
				run.WriteString(string(sub.Rune))
				continue
			}
			flush()
			if c := requiredLiterals(sub); minLen(c) > minLen(best) {
				best = c
			}
		}
		flush()
		return best
	}
	return nil
}

func minLen(ks []string) int {
	if len(ks) == 0 {
		return 0
	}
	m := len(ks[0])
	for _, k := range ks[1:] {
		m = min(m, len(k))
	}
	return m
}

// NewCatalog compiles signatures, in order, into a catalog.
func NewCatalog(sigs []Signature) (*Catalog, error) {
	c := &Catalog{byID: map[string]*Signature{}}
	var msgKeys, stackKeys []string
	for i := range sigs {
		s := sigs[i] // a copy: the catalog owns its entries
		if s.re == nil && s.Regex != "" || s.fields == nil && len(s.Fields) > 0 || s.Scope == "" {
			if err := s.compile(); err != nil {
				return nil, fmt.Errorf("signature %q: %w", s.ID, err)
			}
		}
		if _, dup := c.byID[s.ID]; dup {
			return nil, fmt.Errorf("signature %q: duplicate id", s.ID)
		}
		s.index = len(c.sigs)
		c.sigs = append(c.sigs, &s)
		c.byID[s.ID] = &s
		keys := s.Keywords
		switch {
		case s.Literal != "":
			keys = []string{s.Literal}
		case len(s.Any) > 0:
			keys = s.Any
		}
		if len(keys) == 0 {
			c.fieldOnly = append(c.fieldOnly, s.index)
		}
		if len(s.fields) > 0 {
			c.needsFields = true
		}
		for _, k := range keys {
			if s.Scope == ScopeStack {
				stackKeys = append(stackKeys, k)
				c.stackOwner = append(c.stackOwner, s.index)
			} else {
				msgKeys = append(msgKeys, k)
				c.msgOwner = append(c.msgOwner, s.index)
			}
		}
	}
	c.msgKeys = newKeywordSet(msgKeys)
	c.hasStackSig = len(stackKeys) > 0
	c.stackKeys = newKeywordSet(stackKeys)
	return c, nil
}

// Signatures returns the catalog's entries in order.
func (c *Catalog) Signatures() []Signature {
	out := make([]Signature, len(c.sigs))
	for i, s := range c.sigs {
		out[i] = *s
	}
	return out
}

// Lookup returns the signature with the given id.
func (c *Catalog) Lookup(id string) (Signature, bool) {
	s, ok := c.byID[id]
	if !ok {
		return Signature{}, false
	}
	return *s, true
}

// Classify returns the first non-generic signature (or, failing that, the
// first generic one) whose text occurs in text, such as a failed request's
// reason or a client's error message. Signatures that need fields or match
// stacks are not considered.
func (c *Catalog) Classify(text string) (Signature, bool) {
	var m matcher
	m.reset(c)
	m.scanPart(text, rankHeadline, false)
	if m.best < 0 {
		return Signature{}, false
	}
	return *c.sigs[m.best], true
}
