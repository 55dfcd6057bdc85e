package har

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stampede-load/stampede/internal/load"
)

// correlation is a correlation as a test expects it: the variable (""
// for a field submit_form carries), the step whose response carried it
// and its entry, a part of the rule, and one of its uses.
type correlation struct {
	v, from string
	entry   int
	rule    string
	used    string
}

// findCorrelation returns the correlation used where want says, or nil.
func findCorrelation(res *Result, want correlation) *Correlation {
	for i, c := range res.Correlations {
		for _, u := range c.UsedIn {
			if u == want.used {
				return &res.Correlations[i]
			}
		}
	}
	return nil
}

// checkCorrelations checks that each wanted correlation lands on the right
// response, by the right rule.
func checkCorrelations(t *testing.T, res *Result, want []correlation) {
	t.Helper()
	for _, w := range want {
		c := findCorrelation(res, w)
		if c == nil {
			var have []string
			for _, c := range res.Correlations {
				have = append(have, c.Var+" from "+c.From+" used in "+strings.Join(c.UsedIn, ", "))
			}
			t.Errorf("no correlation used in %q; have:\n  %s", w.used, strings.Join(have, "\n  "))
			continue
		}
		if c.Var != w.v || c.From != w.from || c.FromEntry != w.entry || !strings.Contains(c.Rule, w.rule) {
			t.Errorf("%s: got {{%s}} from %s (log.entries[%d]) by %q, want {{%s}} from %s (log.entries[%d]) by %q",
				w.used, c.Var, c.From, c.FromEntry, c.Rule, w.v, w.from, w.entry, w.rule)
		}
		if c.NotExpressed != "" {
			t.Errorf("%s: not expressed: %s", w.used, c.NotExpressed)
		}
	}
}

// compiles checks that a scenario is valid for stampede run, with a users
// file of the header it needs.
func compiles(t *testing.T, res *Result) *load.Plan {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "scenario.yaml")
	if err := os.WriteFile(path, res.Scenario, 0o644); err != nil {
		t.Fatal(err)
	}
	if res.UsersHeader != nil {
		users := strings.Join(res.UsersHeader, ",") + "\nsomeone,secret-2\n"
		if err := os.WriteFile(filepath.Join(dir, "users.csv"), []byte(users), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sc, err := load.ReadScenario(path)
	if err != nil {
		t.Fatalf("%v\n%s", err, res.Scenario)
	}
	plan, err := sc.Compile()
	if err != nil {
		t.Fatalf("%v\n%s", err, res.Scenario)
	}
	return plan
}

// TestTools reads a recording of the same visit as each tool writes HAR
// (testdata/tools, hand-made from their documented formats): Chromium's
// and Safari's DevTools, Firefox's, mitmproxy's savehar, Charles, Fiddler
// and Proxyman. Each becomes a scenario with the same steps, login and
// correlations, and none holds the recorded credentials.
func TestHARTools(t *testing.T) {
	shop := []string{"GET /", "GET /accounts/login/", "POST /accounts/login/", "GET /", "GET /api/cart/", "GET /orders/:id/"}
	shopCorr := []correlation{
		{"", "GET /accounts/login/", 1, "hidden input csrfmiddlewaretoken", "POST /accounts/login/ form field csrfmiddlewaretoken"},
		{"csrftoken", "POST /accounts/login/", 5, "cookie csrftoken", "GET /api/cart/ header X-Csrftoken"},
		{"orders_id", "GET /", 6, "link /orders/", "GET /orders/:id/ path segment 1"},
	}
	shopLeft := map[string]int{LeftStatic: 1, LeftThirdParty: 1, LeftFavicon: 1, LeftBeacon: 1, LeftAfterLogout: 1}
	with := func(m map[string]int, k string, n int) map[string]int {
		out := map[string]int{k: n}
		for kk, v := range m {
			if kk != k {
				out[kk] = v
			}
		}
		return out
	}
	cases := []struct {
		file    string
		creator string
		entries int
		steps   []string
		login   string
		fields  string
		left    map[string]int
		corr    []correlation
		made    []string // client-made values: "STEP SENT"
	}{
		{file: "chromium.har", creator: "WebInspector", entries: 12, steps: shop, login: "POST /accounts/login/",
			fields: "form field login ← {{user.username}}, form field password ← {{user.password}}", left: with(shopLeft, LeftWebSocket, 1), corr: shopCorr},
		{file: "firefox.har", creator: "Firefox", entries: 12, steps: shop, login: "POST /accounts/login/",
			fields: "form field login ← {{user.username}}, form field password ← {{user.password}}", left: with(shopLeft, LeftPreflight, 1), corr: shopCorr},
		{file: "safari.har", creator: "WebKit Web Inspector", entries: 12, steps: shop, login: "POST /accounts/login/",
			fields: "form field login ← {{user.username}}, form field password ← {{user.password}}", left: with(shopLeft, LeftServiceWorker, 1), corr: shopCorr},
		{file: "mitmproxy.har", creator: "mitmproxy", entries: 11, steps: shop, login: "POST /accounts/login/",
			fields: "form field login ← {{user.username}}, form field password ← {{user.password}}", left: shopLeft, corr: shopCorr},
		{file: "charles.har", creator: "Charles Proxy", entries: 12, steps: append(append([]string(nil), shop...), "POST /orders/:id/photo/"),
			login: "POST /accounts/login/", fields: "form field login ← {{user.username}}, form field password ← {{user.password}}", left: shopLeft,
			corr: append(append([]correlation(nil), shopCorr...),
				correlation{"csrfmiddlewaretoken", "GET /accounts/login/", 1, "hidden input csrfmiddlewaretoken", "POST /orders/:id/photo/ form field csrfmiddlewaretoken"},
				correlation{"orders_id", "GET /", 6, "link /orders/", "POST /orders/:id/photo/ path segment 1"})},
		{file: "fiddler.har", creator: "Fiddler", entries: 5, steps: []string{"GET /app/", "POST /api/login", "GET /api/orders", "GET /api/orders/:id"},
			login: "POST /api/login", fields: "JSON field email ← {{user.username}}, JSON field password ← {{user.password}}", left: map[string]int{LeftStatic: 1},
			corr: []correlation{
				{"access_token", "POST /api/login", 2, "JSON field access_token", "GET /api/orders header Authorization"},
				{"access_token", "POST /api/login", 2, "JSON field access_token", "GET /api/orders/:id header Authorization"},
				{"orders_id", "GET /api/orders", 3, "JSON field orders[0].id", "GET /api/orders/:id path segment 2"},
			},
			made: []string{"GET /api/orders query parameter _", "GET /api/orders/:id header X-Request-Id"}},
		{file: "proxyman.har", creator: "Proxyman", entries: 11, steps: shop, login: "POST /accounts/login/",
			fields: "form field login ← {{user.username}}, form field password ← {{user.password}}", left: shopLeft, corr: shopCorr},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join("testdata", "tools", tc.file)
			l, err := ReadFile(path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if l.Creator.Name != tc.creator || len(l.Entries) != tc.entries {
				t.Errorf("creator %q, %d entries; want %q, %d", l.Creator.Name, len(l.Entries), tc.creator, tc.entries)
			}
			for i := 1; i < len(l.Entries); i++ {
				if l.Entries[i].Started.Before(l.Entries[i-1].Started) {
					t.Errorf("entries out of order at %d", i)
				}
			}
			res, err := Convert(l, Options{Source: tc.file})
			if err != nil {
				t.Fatal(err)
			}
			if res.Origin != "https://shop.example.test" {
				t.Errorf("origin %q", res.Origin)
			}
			var steps []string
			for _, s := range res.Steps {
				steps = append(steps, s.Name)
			}
			if got, want := strings.Join(steps, " | "), strings.Join(tc.steps, " | "); got != want {
				t.Errorf("steps\n  %s\nwant\n  %s", got, want)
			}
			if res.Login == nil || stepOfLogin(res) != tc.login || res.Login.Step != tc.login || strings.Join(res.Login.Fields, ", ") != tc.fields {
				t.Fatalf("login %+v at %q, want %s with %s", res.Login, stepOfLogin(res), tc.login, tc.fields)
			}
			// A form login whose page is just before it is a submit_form.
			if want := !res.Login.JSON; res.Login.SubmitForm != want {
				t.Errorf("login submit_form %v, want %v", res.Login.SubmitForm, want)
			}
			if !equalCounts(res.LeftOut, tc.left) {
				t.Errorf("left out %v, want %v", res.LeftOut, tc.left)
			}
			checkCorrelations(t, res, tc.corr)
			var made []string
			for _, u := range res.Unresolved {
				if u.Kind == ClientMade {
					made = append(made, u.Step+" "+u.Sent)
				}
				if u.Kind == NotTraced {
					t.Errorf("not traced: %s %s (%s)", u.Step, u.Sent, u.Why)
				}
			}
			if strings.Join(made, ", ") != strings.Join(tc.made, ", ") {
				t.Errorf("client-made %q, want %q", made, tc.made)
			}
			for _, secret := range []string{"Tr0ub4dor", "alice@example.test", "alice%40example.test"} {
				if bytes.Contains(res.Scenario, []byte(secret)) {
					t.Errorf("the scenario holds the recorded %q", secret)
				}
			}
			compiles(t, res)
		})
	}
}

func stepOfLogin(res *Result) string {
	for _, s := range res.Steps {
		if s.Login {
			return s.Name
		}
	}
	return ""
}

func equalCounts(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	keys := make([]string, 0, len(a))
	for k := range a {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if a[k] != b[k] {
			return false
		}
	}
	return true
}
