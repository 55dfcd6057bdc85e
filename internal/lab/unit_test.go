package lab

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"go/parser"
	"go/token"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// Django's own test vectors (tests/auth_tests/test_hashers.py, test_pbkdf2):
// make_password("lètmein", "seasalt", "pbkdf2_sha256") in Django 3.2 and 4.2.
// Recomputed with Python's hashlib.pbkdf2_hmac in Django's encoding.
func TestVerifyDjangoPBKDF2(t *testing.T) {
	tests := []struct {
		encoded, password string
		want              bool
	}{
		{"pbkdf2_sha256$260000$seasalt$YlZ2Vggtqdc61YjArZuoApoBh9JNGYoDRBUGu6tcJQo=", "lètmein", true},
		{"pbkdf2_sha256$600000$seasalt$OAXyhAQ/4ZDA9V5RMExt3C1OwQdUpLZ99vm1McFlLRA=", "lètmein", true},
		{"pbkdf2_sha256$1000$seasalt$" + mustPBKDF2(t, "lètmein", "seasalt", 1000), "letmein", false},
	}
	for _, tt := range tests {
		got, err := verify(tt.password, tt.encoded)
		if err != nil || got != tt.want {
			t.Errorf("verify(%q, %q) = %v, %v; want %v", tt.password, tt.encoded, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "md5$x$y", "pbkdf2_sha256$x$salt$hash", "pbkdf2_sha256$1$salt", "argon2$argon2id$v=19$m=0,t=1,p=1$AA$AA"} {
		if _, err := verify("x", bad); err == nil {
			t.Errorf("verify(%q): want an error", bad)
		}
	}
}

func mustPBKDF2(t *testing.T, password, salt string, iter int) string {
	t.Helper()
	enc, err := pbkdf2Encode(password, salt, iter)
	if err != nil {
		t.Fatal(err)
	}
	return enc[strings.LastIndex(enc, "$")+1:]
}

func TestHasherRoundTrip(t *testing.T) {
	for _, h := range []hasher{{algo: HasherPBKDF2, iterations: 1000}, {algo: HasherArgon2, argonT: 1, argonM: 1024, argonP: 2}} {
		enc, err := h.make("rahasia")
		if err != nil {
			t.Fatal(err)
		}
		prefix := map[string]string{HasherPBKDF2: "pbkdf2_sha256$1000$", HasherArgon2: "argon2$argon2id$v=19$m=1024,t=1,p=2$"}[h.algo]
		if !strings.HasPrefix(enc, prefix) {
			t.Errorf("%s: encoded %q, want prefix %q", h.algo, enc, prefix)
		}
		if ok, err := verify("rahasia", enc); !ok || err != nil {
			t.Errorf("%s: verify right password = %v, %v", h.algo, ok, err)
		}
		if ok, _ := verify("salah", enc); ok {
			t.Errorf("%s: verify wrong password = true", h.algo)
		}
	}
}

func TestParseRates(t *testing.T) {
	got, err := parseRates("10/m/ip,5/300s/key")
	want := []rate{{10, time.Minute, "ip"}, {5, 300 * time.Second, "key"}}
	if err != nil || len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("parseRates = %v, %v; want %v", got, err, want)
	}
	if got, _ := parseRates("30/m"); len(got) != 1 || got[0] != (rate{30, time.Minute, "ip"}) {
		t.Errorf("parseRates(30/m) = %v", got)
	}
	for _, bad := range []string{"x/m/ip", "5/q/ip", "5/m/host", "5", "5/0s/ip"} {
		if _, err := parseRates(bad); err == nil {
			t.Errorf("parseRates(%q): want an error", bad)
		}
	}
}

func TestCSRFMask(t *testing.T) {
	secret := randomString(csrfSecretLen)
	a, b := maskCSRF(secret), maskCSRF(secret)
	if a == b || len(a) != 64 {
		t.Fatalf("masked tokens %q %q: want distinct 64-char tokens", a, b)
	}
	if unmaskCSRF(a) != secret || unmaskCSRF(b) != secret {
		t.Errorf("unmask does not recover the secret")
	}
}

func TestBouncerReserveAndFIFO(t *testing.T) {
	l, _ := openLogs("")
	b := newBouncer(Config{PoolSize: 1, ReservePoolSize: 1, ReservePoolTimeout: 100 * time.Millisecond, QueryWaitTimeout: time.Second}, l)
	ctx := context.Background()
	c1, err := b.acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	c2, err := b.acquire(ctx) // gets the reserve after reserve_pool_timeout
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 90*time.Millisecond || d > 600*time.Millisecond {
		t.Errorf("reserve server after %v, want about reserve_pool_timeout (100ms)", d)
	}
	_, err = b.acquire(ctx) // pool and reserve busy: query_wait_timeout
	var se *ServerError
	if !errors.As(err, &se) || err.Error() != "FATAL: query_wait_timeout (SQLSTATE 08P01)" {
		t.Errorf("third client: %v, want pgx's text for PgBouncer's query_wait_timeout", err)
	}
	c1.release()
	c2.release()
	if a, w := b.stats(); a != 0 || w != 0 {
		t.Errorf("after release: active %d waiting %d", a, w)
	}
}

func TestConfigPresetsFlagsAndFile(t *testing.T) {
	for _, p := range Presets {
		var c Config
		if err := c.Preset(p); err != nil {
			t.Fatal(err)
		}
		if err := c.Validate(); err != nil {
			t.Errorf("preset %s: %v", p, err)
		}
	}
	var c Config
	if err := c.Preset("nope"); err == nil {
		t.Error("unknown preset accepted")
	}
	_ = c.Preset("seed")
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	c.RegisterFlags(fs)
	if err := fs.Parse([]string{"--pool-size", "7", "--hasher", "argon2id"}); err != nil {
		t.Fatal(err)
	}
	if c.PoolSize != 7 || c.Hasher != HasherArgon2 || c.RateLimitLoginFailed != "10/m/ip,5/300s/key" {
		t.Errorf("after flags: %+v", c)
	}
	path := filepath.Join(t.TempDir(), "lab.yaml")
	os.WriteFile(path, []byte("preset: fixed\nquery-wait-timeout: 2s\nmissing-index: true\nratelimit-login: 5/m/ip\n"), 0o644)
	var f Config
	if err := f.LoadFile(path); err != nil {
		t.Fatal(err)
	}
	if f.PoolSize != 50 || f.QueryWaitTimeout != 2*time.Second || !f.MissingIndex || f.RateLimitLogin != "5/m/ip" {
		t.Errorf("LoadFile: %+v", f)
	}
	os.WriteFile(path, []byte("pool-sise: 3\n"), 0o644)
	if err := f.LoadFile(path); err == nil || !strings.Contains(err.Error(), "pool-sise") {
		t.Errorf("unknown key: %v", err)
	}
	bad := Config{RateLimitLogin: "3/x/ip", RateLimitResponse: 302, Store: "mysql"}
	if err := bad.Validate(); err == nil {
		t.Error("Validate accepted a bad config")
	}
}

func TestWriteUsersCSV(t *testing.T) {
	var b bytes.Buffer
	if err := WriteUsersCSV(&b, 2); err != nil {
		t.Fatal(err)
	}
	want := "username,password\nuser0001,semen-ahsp-2000\nuser0002,pasir-ahsp-2001\n"
	if b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
}

// The lab must not import the rest of stampede: the diagnosis has to find
// its faults from the outside.
func TestImportsNothingOfStampede(t *testing.T) {
	files, _ := filepath.Glob("*.go")
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range af.Imports {
			if strings.Contains(imp.Path.Value, "github.com/stampede-load/stampede") {
				t.Errorf("%s imports %s", f, imp.Path.Value)
			}
		}
	}
}

// The session lifetime knob: an expired session logs the user out.
func TestSessionTTL(t *testing.T) {
	cfg := testConfig(t)
	cfg.SessionTTL = 500 * time.Millisecond
	_, base := startLab(t, cfg)
	v := loggedIn(t, base, 1)[0]
	if r := v.do("d", "GET", "/dashboard/", nil); r.status != 200 {
		t.Fatalf("/dashboard/: %d", r.status)
	}
	time.Sleep(700 * time.Millisecond)
	if r := v.do("d", "GET", "/dashboard/", nil); r.status != 302 {
		t.Errorf("/dashboard/ after the session expired: %d, want 302", r.status)
	}
}

// ReopenLogs after a rename rotation: the lines before it are in the
// renamed file, the lines after it in a new file at the old path.
func TestReopenLogs(t *testing.T) {
	cfg := testConfig(t)
	s, base := startLab(t, cfg)
	get := func(path string) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	get("/healthz?before")
	access := filepath.Join(cfg.LogDir, AccessLog)
	if err := os.Rename(access, access+".1"); err != nil {
		t.Fatal(err)
	}
	get("/healthz?between") // still the old descriptor: the renamed file
	if err := s.ReopenLogs(); err != nil {
		t.Fatal(err)
	}
	get("/healthz?after")
	old, now := readLog(t, cfg.LogDir, AccessLog+".1"), readLog(t, cfg.LogDir, AccessLog)
	for _, c := range []struct {
		file, log, text string
		want            bool
	}{
		{"access.log.1", old, "before", true}, {"access.log.1", old, "between", true}, {"access.log.1", old, "after", false},
		{"access.log", now, "before", false}, {"access.log", now, "between", false}, {"access.log", now, "after", true},
	} {
		if got := strings.Contains(c.log, "?"+c.text); got != c.want {
			t.Errorf("%q in %s: %v, want %v", c.text, c.file, got, c.want)
		}
	}
	if g := readLog(t, cfg.LogDir, GunicornLog); !strings.Contains(g, "Handling signal: usr1") {
		t.Errorf("gunicorn.log lacks the reopen:\n%s", g)
	}
	s.Close()
	if err := s.ReopenLogs(); err != nil {
		t.Errorf("ReopenLogs after Close: %v", err)
	}
}
