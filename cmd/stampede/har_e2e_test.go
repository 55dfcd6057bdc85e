package main

import (
	"context"
	"encoding/csv"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/testenv"
)

// The recordings of a real Chromium driven through a login and a short
// visit, on the lab and on the real Django target: made by
// TestHARRecordChromium with STAMPEDE_RECORD_HAR=1, committed, and turned
// into scenarios by the tests below.
var recordings = filepath.Join("..", "..", "internal", "har", "testdata", "recordings")

// TestHARRecordChromium records the fixtures. It drives headless Chromium
// through the DevTools protocol: the lab's login (its users file's first
// account, whose throwaway password the fixture holds), the work list, an
// item, the next page, and the sign-out; the same on the Django target.
func TestHARRecordChromium(t *testing.T) {
	if os.Getenv("STAMPEDE_RECORD_HAR") == "" {
		t.Skip("set STAMPEDE_RECORD_HAR=1 to record the Chromium fixtures again (internal/har/testdata/recordings)")
	}
	if err := os.MkdirAll(recordings, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Run("lab", func(t *testing.T) {
		addr := freeAddr(t)
		startLabProcess(t, addr, "--preset", "healthy", "--log-dir", t.TempDir())
		user, pw := labAccount(t, 1)
		base := "http://" + addr
		recordVisit(t, filepath.Join(recordings, "lab-chromium.har"), func(ctx context.Context) error {
			return chromedp.Do(ctx,
				chromedp.Navigate(base+"/dashboard/"),
				chromedp.WaitVisible("#id_login"),
				chromedp.Sleep(1500*time.Millisecond),
				chromedp.SendKeys("#id_login", user),
				chromedp.SendKeys("#id_password", pw),
				chromedp.Click("button.primaryAction"),
				waitPath("/dashboard/"), chromedp.WaitVisible("#jumlah"),
				chromedp.Sleep(2*time.Second),
				chromedp.Click(`nav a[href="/pekerjaan/"]`),
				waitPath("/pekerjaan/"), chromedp.WaitVisible(`a[href^="/rincian-ahsp/"]`),
				chromedp.Sleep(2500*time.Millisecond),
				chromedp.Click(`table tr:nth-child(3) a[href^="/rincian-ahsp/"]`),
				waitPath("/rincian-ahsp/"),
				chromedp.Sleep(3*time.Second),
				chromedp.Click(`nav a[href="/pekerjaan/"]`),
				waitPath("/pekerjaan/"), chromedp.WaitVisible(`a[href="/pekerjaan/?page=2"]`),
				chromedp.Sleep(1500*time.Millisecond),
				chromedp.Click(`a[href="/pekerjaan/?page=2"]`),
				waitQuery("page=2"),
				chromedp.Sleep(2*time.Second),
				chromedp.Click(`nav button[type=submit]`),
				waitPath("/accounts/login/"), chromedp.WaitVisible("#id_login"),
			)
		})
	})
	t.Run("django", func(t *testing.T) {
		st, sh := testenv.PrepareStack(t, "django")
		tg := testenv.StartTarget(t, st, sh, "healthy", t.TempDir())
		users := filepath.Join(t.TempDir(), "users.csv")
		if err := tg.WriteUsers(users, 1); err != nil {
			t.Fatal(err)
		}
		user, pw := csvAccount(t, users, 1)
		base := tg.DirectURL()
		recordVisit(t, filepath.Join(recordings, "django-chromium.har"), func(ctx context.Context) error {
			return chromedp.Do(ctx,
				chromedp.Navigate(base+"/dashboard/"),
				chromedp.WaitVisible(`input[name="login"]`),
				chromedp.Sleep(1500*time.Millisecond),
				chromedp.SendKeys(`input[name="login"]`, user),
				chromedp.SendKeys(`input[name="password"]`, pw),
				chromedp.Click(`form.login button[type="submit"]`),
				waitPath("/dashboard/"),
				chromedp.Sleep(2*time.Second),
				chromedp.Click(`nav a[href="/items/"]`),
				waitPath("/items/"), chromedp.WaitVisible(`a[href="?page=2"]`),
				chromedp.Sleep(2500*time.Millisecond),
				chromedp.Click(`a[href="?page=2"]`),
				waitQuery("page=2"),
				chromedp.Sleep(2*time.Second),
				chromedp.Click(`nav form button[type="submit"]`),
				waitNotPath("/items/"),
				chromedp.Sleep(time.Second),
			)
		})
	})
}

// waitPath waits until the tab's URL has the path.
func waitPath(p string) chromedp.Action[chromedp.Void] {
	return waitLocation(func(u string) bool { return strings.Contains(u, p) }, "path "+p)
}

func waitNotPath(p string) chromedp.Action[chromedp.Void] {
	return waitLocation(func(u string) bool { return !strings.Contains(u, p) }, "not path "+p)
}

func waitQuery(q string) chromedp.Action[chromedp.Void] {
	return waitLocation(func(u string) bool { return strings.Contains(u, "?"+q) }, "query "+q)
}

func waitLocation(ok func(string) bool, what string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			loc, err := chromedp.Location()(ctx, t)
			if err == nil && ok(loc) {
				_, err := chromedp.WaitReady("body")(ctx, t)
				return err
			}
			time.Sleep(100 * time.Millisecond)
		}
		return fmt.Errorf("the page did not reach %s", what)
	})
}

// labAccount returns the lab's account n (from 1), as stampede lab users
// prints it.
func labAccount(t *testing.T, n int) (user, password string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "users.csv")
	writeLabUsers(t, path, n)
	return csvAccount(t, path, n)
}

func writeLabUsers(t *testing.T, path string, n int) {
	t.Helper()
	out, err := stampedeCmd("lab", "users", "--count", fmt.Sprint(n)).Output()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
}

// csvAccount returns row n (from 1) of a users file.
func csvAccount(t *testing.T, path string, n int) (user, password string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil || len(rows) <= n {
		t.Fatalf("%s: %v (%d rows)", path, err, len(rows))
	}
	return rows[n][0], rows[n][1]
}

// TestHARLabRecording: the lab's Chromium recording becomes a scenario
// that --check passes against a fresh lab as another user; with
// correlation switched off, --check fails on the login and names the
// frozen token; the recorded password is in no output; and a 20-user run
// of the scenario logs every user in with no failure.
func TestHARLabRecording(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the lab and a 15 s load")
	}
	fixture := filepath.Join(recordings, "lab-chromium.har")
	if _, err := os.Stat(fixture); err != nil {
		t.Fatalf("%v: record it with STAMPEDE_RECORD_HAR=1 go test -run TestHARRecordChromium ./cmd/stampede", err)
	}
	addr := freeAddr(t)
	startLabProcess(t, addr, "--preset", "healthy", "--log-dir", t.TempDir())
	dir := t.TempDir()
	users := filepath.Join(dir, "users.csv")
	writeLabUsers(t, users, 20)
	checkRecording(t, fixture, "http://"+addr, dir, users, labRecordedPassword(t),
		"POST /accounts/login/: 403 CSRF verification failed. Request aborted. (recorded 302) — the token sent (form field csrfmiddlewaretoken) is the recording's, frozen: the server hands out a fresh one in GET /accounts/login/ (hidden input csrfmiddlewaretoken)")
}

// labRecordedPassword is the password the lab's recording logged in with:
// the lab's first seeded account's.
func labRecordedPassword(t *testing.T) string {
	_, pw := labAccount(t, 1)
	return pw
}

// TestHARDjangoRecording: the same for the recording of the real Django
// target (allauth's login, Django's CSRF), against a fresh target.
func TestHARDjangoRecording(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the Django target and runs a 15 s load")
	}
	fixture := filepath.Join(recordings, "django-chromium.har")
	if _, err := os.Stat(fixture); err != nil {
		t.Fatalf("%v: record it with STAMPEDE_RECORD_HAR=1 go test -run TestHARRecordChromium ./cmd/stampede", err)
	}
	st, sh := testenv.PrepareStack(t, "django")
	tg := testenv.StartTarget(t, st, sh, "healthy", t.TempDir())
	dir := t.TempDir()
	users := filepath.Join(dir, "users.csv")
	if err := tg.WriteUsers(users, 21); err != nil {
		t.Fatal(err)
	}
	// The recording logged in as the first account; the check and the
	// run log in as the others.
	drop := func() {
		f, err := os.Open(users)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := csv.NewReader(f).ReadAll()
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		w := csv.NewWriter(&b)
		_ = w.Write(rows[0])
		_ = w.WriteAll(rows[2:])
		if err := os.WriteFile(users, []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	drop()
	checkRecording(t, fixture, tg.DirectURL(), dir, users, testenv.DjangoPassword,
		"POST /accounts/login/: 403 ")
}

// checkRecording runs stampede har --check on a recording against target,
// with and without correlation, then a 20-user run of its scenario.
func checkRecording(t *testing.T, rec, target, dir, users, password, frozenWant string) {
	t.Helper()
	scenario := filepath.Join(dir, "scenario.yaml")
	stdout, stderr, code := runBinary(t, "har", rec, "-o", scenario, "--users-file", users, "--target", target, "--check", "--user", "2")
	t.Logf("stampede har --check:\n%s%s", stdout, stderr)
	if code != 0 || !strings.Contains(stdout, "Check passed") {
		t.Fatalf("har --check: exit %d", code)
	}
	body, err := os.ReadFile(scenario)
	if err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{"stdout": stdout, "stderr": stderr, "scenario": string(body)} {
		if strings.Contains(text, password) {
			t.Errorf("%s holds the recorded password", name)
		}
	}

	frozen := filepath.Join(dir, "frozen.yaml")
	stdout, stderr, code = runBinary(t, "har", rec, "-o", frozen, "--users-file", users, "--target", target, "--check", "--no-correlate")
	t.Logf("stampede har --check --no-correlate:\n%s%s", stdout, stderr)
	if code != 1 || !strings.Contains(stderr, "Error: check: "+frozenWant) || !strings.Contains(stderr, "csrfmiddlewaretoken") {
		t.Errorf("--no-correlate: exit %d, want 1 with %q naming csrfmiddlewaretoken", code, frozenWant)
	}
	if strings.Contains(stdout+stderr, password) {
		t.Errorf("the --no-correlate output holds the recorded password")
	}

	// 20 users, 15 s: every user logs in, nothing fails.
	run := filepath.Join(dir, "run")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "run", scenario, "-u", "20", "-r", "10", "-t", "15s", "--out", run, "--quiet", "--no-diagnose")
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil || err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	rs := readResults(t, run)
	loggedIn := map[int]bool{}
	failed := 0
	for _, r := range rs {
		if r.Outcome != stampede.OK {
			failed++
			if failed <= 5 {
				t.Errorf("failed: %s user %d: %s %s", r.Name, r.User, r.Outcome, r.Reason)
			}
			continue
		}
		if r.Method == "POST" && strings.Contains(r.Name, "login") {
			loggedIn[r.User] = true
		}
	}
	t.Logf("20-user run: %d requests, %d failed, %d users logged in", len(rs), failed, len(loggedIn))
	if failed > 0 || len(loggedIn) != 20 {
		t.Errorf("%d failures, %d of 20 users logged in", failed, len(loggedIn))
	}
}
