package load

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// bounded runs f, failing the test if it takes longer than d: hostile
// input must never hang a reader.
func bounded[T any](t *testing.T, d time.Duration, f func() (T, error)) (T, error) {
	t.Helper()
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := f()
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-time.After(d):
		t.Fatalf("no answer in %v", d)
		var zero T
		return zero, nil
	}
}

// TestHostileScenarios reads the malformed scenarios of
// testdata/hostile/scenario: each is an error naming the file, the line and
// column and the field (or, for the well-formed ones, no error), never a
// crash or a hang.
func TestHostileScenarios(t *testing.T) {
	for _, tc := range []struct{ file, want string }{
		{"badtype.yaml", "badtype.yaml:3:10: load.users: want an integer, got a string"},
		{"overflow.yaml", "overflow.yaml:2:15: load.users: number out of range"},
		{"targetlist.yaml", "targetlist.yaml:1:9: target: want a string, got a list"},
		{"unknown.yaml", "unknown.yaml:2:1: laod: unknown field (did you mean load?)"},
		{"unknownstep.yaml", "unknownstep.yaml:5:18: tasks[0].steps[0].bogus: unknown field; known here: name, get"},
		{"typo-expect.yaml", "typo-expect.yaml:5:27: tasks[0].steps[0].expect.stauts: unknown field (did you mean status?)"},
		{"unclosed.yaml", "unclosed.yaml:2:7: could not find flow mapping end token"},
		{"tab.yaml", "tab.yaml:2:1: found character '\t' that cannot start any token"},
		{"bad-indent.yaml", "bad-indent.yaml:7:5:"},
		{"dupkey.yaml", `dupkey.yaml:6:1: mapping key "target" already defined`},
		{"list.yaml", "list.yaml:1:1: sequence was used where mapping is expected"},
		{"binary-garbage.yaml", "binary-garbage.yaml:1:1: a NUL byte"},
		{"badutf8.yaml", "badutf8.yaml:1:10: invalid UTF-8"},
		{"empty.yaml", "empty.yaml: empty: want a scenario"},
		{"alias-self.yaml", "alias-self.yaml:1:8: alias *a refers to itself"},
		{"laughs.yaml", "laughs.yaml:11:52: the aliases expand to more than 100000 values"},
		{"tagged.yaml", "tagged.yaml:1:9: target: YAML tag !!binary"},
		{"tag-on-empty.yaml", "tag-on-empty.yaml:2:3: tasks: YAML tag !0000000"}, // the decoder panicked on it
		{"think.yaml", `think.yaml:3:8: think "3s..1s": the maximum is below the minimum`},
		{"nousers.yaml", "nousers.yaml:4:16: on_start[0]: {{user.password}} needs a users_file"},
		{"two-methods.yaml", "two-methods.yaml:5:9: tasks[0].steps[0]: a step needs exactly one of get, post"},
		{"bad-duration.yaml", `bad-duration.yaml:2:28: load.duration: "forever": want a positive duration`},
		{"bad-status.yaml", "bad-status.yaml:5:35: expect.status: 700 is not an HTTP status"},
		{"bad-regex.yaml", "bad-regex.yaml:5:31: extract x: regex: error parsing regexp"},
		{"bad-decode.yaml", `bad-decode.yaml:5:31: extract x: decode "base64": want url`},
		{"undefined-var.yaml", "undefined-var.yaml:5:9: tasks[0].steps[0]: {{nothing}} is neither a users file column"},
		{"bad-rate.yaml", `bad-rate.yaml:2:46: load.arrival_rate: rate "fast"`},
		{"two-docs.yaml", "two-docs.yaml:5:7: a scenario is one YAML document"},
		{"target-with-password.yaml", `target-with-password.yaml:1:9: target: "ftp://admin:xxxxx@127.0.0.1/?token=xxxxx" is not an http(s) URL`},
		{"bom-ok.yaml", ""},
		{"crlf-ok.yaml", ""},
	} {
		t.Run(tc.file, func(t *testing.T) {
			_, err := bounded(t, 10*time.Second, func() (*Plan, error) {
				sc, err := ReadScenario(filepath.Join("testdata/hostile/scenario", tc.file))
				if err != nil {
					return nil, err
				}
				return sc.Compile()
			})
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("error %v, want none", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
	t.Run("too-large", func(t *testing.T) {
		big := []byte("target: http://127.0.0.1:1\n# " + strings.Repeat("x", maxScenarioBytes) + "\n")
		_, err := ParseScenario("big.yaml", big)
		if err == nil || !strings.Contains(err.Error(), "big.yaml: ") || !strings.Contains(err.Error(), "a scenario is at most") {
			t.Errorf("error %v", err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		_, err := ReadScenario("testdata/hostile/scenario/no-such.yaml")
		if err == nil || !strings.Contains(err.Error(), "no-such.yaml") {
			t.Errorf("error %v", err)
		}
	})
	t.Run("directory", func(t *testing.T) {
		_, err := ReadScenario("testdata/hostile/scenario")
		if err == nil || !strings.Contains(err.Error(), "testdata/hostile/scenario") {
			t.Errorf("error %v", err)
		}
	})
}

// TestHostileUsersFiles compiles a scenario over each users file of
// testdata/hostile/users: an error naming the file and line, or the rows.
func TestHostileUsersFiles(t *testing.T) {
	abs, err := filepath.Abs("testdata/hostile/users")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		file, want string
		rows       int
	}{
		{"bare-quote.csv", `bare-quote.csv: parse error on line 2, column 9: bare " in non-quoted-field`, 0},
		{"unterminated-quote.csv", "unterminated-quote.csv: parse error on line 2, column 12: extraneous or missing \" in quoted-field", 0},
		{"wrong-width.csv", "wrong-width.csv: record on line 3: wrong number of fields", 0},
		{"empty.csv", "empty.csv: empty: want a header row", 0},
		{"header-only.csv", "header-only.csv: no rows after the header", 0},
		{"binary-garbage.csv", "binary-garbage.csv:1: column 1 of the header is not UTF-8 text", 0},
		{"no-password-column.csv", `s.yaml:6:16: on_start[1]: {{user.username}}: the users file has no column "username" (columns: name, pass)`, 0},
		{"unnamed-column.csv", "unnamed-column.csv:1: column 2 of the header has no name", 0},
		{"bom-ok.csv", "", 1},
		{"crlf-ok.csv", "", 1},
		{".", "users_file: " + abs + ": read " + abs + ": is a directory", 0},
	} {
		t.Run(tc.file, func(t *testing.T) {
			yml := fmt.Sprintf(`target: http://127.0.0.1:1
load: {users: 1, duration: 1s}
users_file: %s
on_start:
  - {get: /}
  - submit_form: {fields: {login: "{{user.username}}", password: "{{user.password}}"}}
`, filepath.Join(abs, tc.file))
			path := filepath.Join(t.TempDir(), "s.yaml")
			if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
				t.Fatal(err)
			}
			p, err := bounded(t, 10*time.Second, func() (*Plan, error) {
				sc, err := ReadScenario(path)
				if err != nil {
					return nil, err
				}
				return sc.Compile()
			})
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("error %v, want none", err)
			case tc.want == "" && len(p.Rows) != tc.rows:
				t.Errorf("%d rows, want %d (header %q)", len(p.Rows), tc.rows, p.Header)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error %v\nwant it to contain %q", err, tc.want)
			}
			if err != nil && !strings.Contains(err.Error(), "s.yaml:3:13: users_file") && !strings.Contains(err.Error(), "{{user.") {
				t.Errorf("error %v does not name the scenario's users_file", err)
			}
		})
	}
}

// FuzzParseScenario: any bytes as a scenario file give a scenario or an
// error naming the file, never a panic or a hang.
func FuzzParseScenario(f *testing.F) {
	files, _ := filepath.Glob("testdata/hostile/scenario/*.yaml")
	for _, file := range append(files, "../../scenarios/seed.yaml") {
		if b, err := os.ReadFile(file); err == nil {
			f.Add(b)
		}
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		sc, err := ParseScenario(filepath.Join(dir, "fuzz.yaml"), data)
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.yaml") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		if _, err := sc.Compile(); err != nil && !strings.Contains(err.Error(), "fuzz.yaml") && !strings.Contains(err.Error(), "flags") {
			t.Fatalf("compile error %q does not name the file", err)
		}
	})
}

// FuzzParseUsers: any bytes as a users file give rows as wide as the
// header, or an error naming the file.
func FuzzParseUsers(f *testing.F) {
	files, _ := filepath.Glob("testdata/hostile/users/*.csv")
	for _, file := range files {
		if b, err := os.ReadFile(file); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		header, rows, err := parseUsers("users.csv", strings.NewReader(string(data)))
		if err != nil {
			if !strings.Contains(err.Error(), "users.csv") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		for i, r := range rows {
			if len(r) != len(header) {
				t.Fatalf("row %d has %d fields, header %d", i+2, len(r), len(header))
			}
		}
	})
}
