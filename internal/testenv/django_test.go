package testenv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLookupDjangoMode(t *testing.T) {
	for _, tc := range []struct {
		name, want, err string
	}{
		{"", "healthy", ""},
		{"healthy", "healthy", ""},
		{"slow-query", "slow-query", ""},
		{"nope", "", `unknown mode "nope"`},
	} {
		m, err := LookupDjangoMode(tc.name)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: error %v, want %q", tc.name, err, tc.err)
		case tc.err == "" && (err != nil || m.Name != tc.want):
			t.Errorf("%q: got %q, %v; want %q", tc.name, m.Name, err, tc.want)
		}
	}
}

// TestDjangoModes: every mode names a finding of DESIGN.md's vocabulary
// (healthy none) and its load stays within what the e2e test affords on 2
// cores: at most 100 users for at most 30 s.
func TestDjangoModes(t *testing.T) {
	ids := map[string]bool{}
	for _, id := range strings.Fields(`db-pool-wait-timeout db-connection-limit login-rate-limit password-hash-cpu
		cpu-saturation db-lock-contention slow-query redis-connection-limit redis-unavailable app-worker-saturation
		csrf-failure session-lost target-down`) {
		ids[id] = true
	}
	seen := map[string]bool{}
	for i, m := range DjangoModes() {
		if seen[m.Name] {
			t.Errorf("%s: twice", m.Name)
		}
		seen[m.Name] = true
		if i == 0 && (m.Name != "healthy" || m.Want != "") {
			t.Errorf("first mode %s (want %q): want healthy, expecting no finding", m.Name, m.Want)
		}
		if i > 0 && !ids[m.Want] {
			t.Errorf("%s: want %q is not a finding id", m.Name, m.Want)
		}
		if m.Want != "" && !strings.HasPrefix(m.Name, m.Want) {
			t.Errorf("%s: named after %q?", m.Name, m.Want)
		}
		l := m.Load
		if l.Users < 1 || l.Users > 100 || l.SpawnRate <= 0 || l.Duration <= 0 || l.Duration > 30*time.Second || l.Accounts > l.Users {
			t.Errorf("%s: load %+v", m.Name, l)
		}
		if m.About == "" {
			t.Errorf("%s: no About", m.Name)
		}
	}
}

func TestDjangoWriteScenario(t *testing.T) {
	for _, tc := range []struct {
		mode   string
		rows   int
		assign string
	}{
		{"healthy", 10, "user_assignment: unique"},
		{"login-rate-limit", 1, "user_assignment: round-robin"},
	} {
		m, err := LookupDjangoMode(tc.mode)
		if err != nil {
			t.Fatal(err)
		}
		d := &Django{Config: m, DB: &DjangoDB{Users: 200}}
		dir := t.TempDir()
		path, err := d.WriteScenario(dir)
		if err != nil {
			t.Fatal(err)
		}
		sc, _ := os.ReadFile(path)
		if !strings.Contains(string(sc), "\n"+tc.assign+"\n") || !strings.Contains(string(sc), "users_file: users.csv") {
			t.Errorf("%s: scenario lacks %q:\n%s", tc.mode, tc.assign, sc)
		}
		users, _ := os.ReadFile(filepath.Join(dir, "users.csv"))
		lines := strings.Split(strings.TrimSpace(string(users)), "\n")
		if len(lines) != tc.rows+1 || lines[0] != "username,password" || lines[1] != "user001,"+DjangoPassword {
			t.Errorf("%s: users.csv has %d rows, want %d:\n%s", tc.mode, len(lines)-1, tc.rows, users)
		}
	}
}

// TestDjangoProject: the embedded project has what StartDjango runs.
func TestDjangoProject(t *testing.T) {
	for _, f := range []string{"manage.py", "gunicorn.conf.py", "reftarget/settings.py", "reftarget/__init__.py",
		"work/migrations/0001_initial.py", "work/management/commands/seed.py", "scenario.yaml", "locustfile.py"} {
		if _, err := DjangoFile(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	dir, err := extractDjango()
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if _, err := os.Stat(filepath.Join(dir, "work", "__init__.py")); err != nil {
		t.Errorf("extracted project lacks a package's __init__.py: %v", err)
	}
}
