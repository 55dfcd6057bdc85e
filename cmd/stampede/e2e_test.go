package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/testenv"
)

// The end-to-end acceptance of the diagnosis: the lab in each fault mode,
// loaded as a newcomer would with "stampede demo --fault ID", must be
// diagnosed with that finding on top, confirmed or likely, with evidence
// pointing into the logs (file:line) or the timeline. Each run lasts
// e2eDuration; the file stays within a few minutes on 2 cores.

const e2eDuration = "15s"

// readDiagnosis reads a run directory's diagnosis.json.
func readDiagnosis(t *testing.T, dir string) stampede.Diagnosis {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "diagnosis.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d stampede.Diagnosis
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("diagnosis.json: %v", err)
	}
	return d
}

// summarize lists the findings as id(status,failures).
func summarize(d stampede.Diagnosis) string {
	var s []string
	for _, f := range d.Findings {
		s = append(s, fmt.Sprintf("%s(%s,%d)", f.ID, f.Status, f.Explains.Failures))
	}
	return d.Verdict + ": " + strings.Join(s, " ")
}

// refs returns the evidence references of f that point somewhere: a log's
// file:line or a timeline sample.
func refs(f stampede.Finding) []string {
	var out []string
	for _, e := range f.Evidence {
		if e.Ref != "" && strings.Contains(e.Ref, ":") {
			out = append(out, e.Ref)
		}
	}
	return out
}

// checkTop asserts the top finding is id, confirmed or likely, with
// evidence pointing into the logs or the timeline.
func checkTop(t *testing.T, d stampede.Diagnosis, id string) {
	t.Helper()
	if len(d.Findings) == 0 {
		t.Fatalf("no finding; ruled out: %+v", d.RuledOut)
	}
	top := d.Findings[0]
	if top.ID != id || (top.Status != stampede.Confirmed && top.Status != stampede.Likely) {
		t.Fatalf("top finding: want %s confirmed or likely; got %s", id, summarize(d))
	}
	rs := refs(top)
	if len(rs) == 0 {
		t.Fatalf("%s: no evidence points into the logs or the timeline: %+v", id, top.Evidence)
	}
	t.Logf("%s: %s; refs %s", id, summarize(d), strings.Join(rs, ", "))
}

// checkChains asserts what issue 9 asks of two modes beyond the top
// finding. Lock contention explains slow requests on the endpoint that takes
// the lock (the login), with the blocker's query in the evidence (the
// PostgreSQL probe's blocking chain, or the log's lock wait with its
// statement); a run with no failure is explained by its slowness alone.
// When the session store refuses connections, the lost sessions and the
// 500s are attached to it: no session-lost or unexplained-server-error
// finding stands as a root of its own.
func checkChains(t *testing.T, d stampede.Diagnosis, id string, failed int) {
	t.Helper()
	if len(d.Findings) == 0 || d.Findings[0].ID != id {
		return // checkTop has said it
	}
	top := d.Findings[0]
	switch id {
	case "db-lock-contention":
		if top.Explains.Slow == 0 && (failed == 0 || top.Explains.Failures == 0) {
			t.Errorf("%s explains no slow request (and %d failures of %d): %+v", id, top.Explains.Failures, failed, top.Explains)
		}
		login := false
		for _, e := range top.Explains.Endpoints {
			if strings.Contains(strings.ToLower(e), "login") {
				login = true
			}
		}
		if !login {
			t.Errorf("%s does not explain the login, which takes the lock: endpoints %q", id, top.Explains.Endpoints)
		}
		query := false
		for _, e := range top.Evidence {
			low := strings.ToLower(e.Text)
			if (strings.Contains(low, "blocked by") || strings.Contains(low, "lock")) && strings.Contains(low, "for update") {
				query = true
			}
		}
		if !query {
			t.Errorf("%s: no evidence names the locking query (FOR UPDATE): %+v", id, top.Evidence)
		}
		t.Logf("%s: explains %d failures and %d slow requests on %q; %s", id, top.Explains.Failures, top.Explains.Slow, top.Explains.Endpoints, top.Explains.Latency)
	case "redis-connection-limit":
		for _, f := range d.Findings[1:] {
			// An unexplained group of 4xx (Django answers 400 when it
			// cannot save a session it lost, and logs that nowhere
			// unless django.security is configured) is left alone: no
			// evidence ties it to Redis. Its 500s must not be.
			if f.CausedBy == "" && f.Explains.Failures > 0 && (f.ID == "session-lost" || f.ID == "unexplained-server-error" && evidenceHas(f, `× "HTTP 5`)) {
				t.Errorf("%s (%d failures) stands as a root beside %s: %s", f.ID, f.Explains.Failures, id, summarize(d))
			}
			if f.CausedBy == id {
				t.Logf("%s caused by %s: %d failures", f.ID, id, f.Explains.Failures)
			}
		}
	}
}

func evidenceHas(f stampede.Finding, text string) bool {
	for _, e := range f.Evidence {
		if strings.Contains(e.Text, text) {
			return true
		}
	}
	return false
}

func failedCount(rs []stampede.Result) int {
	n := 0
	for _, r := range rs {
		if r.Outcome != stampede.OK {
			n++
		}
	}
	return n
}

func runDemo(t *testing.T, args ...string) string {
	t.Helper()
	cmd := stampedeCmd(append([]string{"demo", "--quiet"}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("stampede demo %s: %v\n%s", strings.Join(args, " "), err, out.String())
		}
	case <-time.After(3 * time.Minute):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("stampede demo %s did not finish in 3 minutes:\n%s", strings.Join(args, " "), out.String())
	}
	return out.String()
}

func TestE2EFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end runs of the lab take minutes")
	}
	for _, id := range []string{
		"db-pool-wait-timeout", "login-rate-limit", "password-hash-cpu", "redis-connection-limit",
		"db-lock-contention", "slow-query", "app-worker-saturation", "csrf-failure", "session-lost",
		"target-down",
	} {
		t.Run(id, func(t *testing.T) {
			out := t.TempDir()
			args := []string{"--fault", id, "-t", e2eDuration, "--out", out}
			if id == "redis-connection-limit" {
				r := testenv.Redis(t)
				args = append(args, "--redis", r.URL())
			}
			runDemo(t, args...)
			d := readDiagnosis(t, filepath.Join(out, id))
			keepArtifacts(t, "lab-"+id, filepath.Join(out, id))
			recordAccuracy(t, "lab (embedded)", id, id, d)
			checkTop(t, d, id)
			checkChains(t, d, id, failedCount(readResults(t, filepath.Join(out, id))))
		})
	}
}

// TestE2ESeedAndFixed: the demo's two runs. The seed's configuration gives
// both causes, each explaining its own failures, and rules lock contention
// out; the fixed one passes with no confirmed finding.
func TestE2ESeedAndFixed(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end runs of the lab take minutes")
	}
	out := t.TempDir()
	runDemo(t, "-t", e2eDuration, "--out", out)
	seed := readDiagnosis(t, filepath.Join(out, "1-seed"))
	checkSeed(t, seed)
	fixed := readDiagnosis(t, filepath.Join(out, "2-fixed"))
	// The fix removes the seed's two causes and every failure. Its
	// latency depends on how busy the machine is (other tests, the race
	// detector): a failed latency threshold is logged, not held against
	// the fix; anything else failing the run is.
	for _, f := range fixed.Findings {
		if (f.ID == "db-pool-wait-timeout" || f.ID == "login-rate-limit") && f.Status != stampede.Possible {
			t.Errorf("fixed: the seed's cause %s is still there: %s", f.ID, summarize(fixed))
		}
		if f.Status == stampede.Confirmed && f.Explains.Failures > 0 {
			t.Errorf("fixed: confirmed finding explains failures: %s", summarize(fixed))
		}
	}
	if fixed.Verdict != "pass" {
		latencyOnly := true
		for _, th := range fixed.Thresholds {
			if !th.Pass && !strings.Contains(th.Threshold, ": p") && !strings.Contains(th.Threshold, ": avg") && !strings.Contains(th.Threshold, ": max") {
				latencyOnly = false
			}
		}
		failures := false
		for _, f := range fixed.Findings {
			failures = failures || f.Explains.Failures > 0
		}
		if !latencyOnly || failures {
			t.Errorf("fixed: verdict %s", summarize(fixed))
		} else {
			t.Logf("fixed: verdict %s from a latency threshold only (a busy machine): %s", fixed.Verdict, summarize(fixed))
		}
	}
}

// checkSeed asserts the seed's two causes, each explaining failures of its
// own kind, and db-lock-contention ruled out.
func checkSeed(t *testing.T, d stampede.Diagnosis) {
	t.Helper()
	t.Logf("seed: %s", summarize(d))
	find := func(id string) *stampede.Finding {
		for i := range d.Findings {
			if d.Findings[i].ID == id {
				return &d.Findings[i]
			}
		}
		return nil
	}
	for id, kind := range map[string]string{"db-pool-wait-timeout": "500", "login-rate-limit": "Too many failed login attempts"} {
		f := find(id)
		if f == nil || (f.Status != stampede.Confirmed && f.Status != stampede.Likely) || f.Explains.Failures == 0 {
			t.Errorf("seed: want %s explaining failures; got %s", id, summarize(d))
			continue
		}
		own := false
		for _, e := range f.Evidence {
			if e.Source == "requests" && strings.Contains(e.Text, kind) {
				own = true
			}
		}
		if !own {
			t.Errorf("seed: %s does not quote its own failures (%q): %+v", id, kind, f.Evidence)
		}
		if len(refs(*f)) == 0 {
			t.Errorf("seed: %s has no evidence in the logs or the timeline", id)
		}
	}
	out := false
	for _, r := range d.RuledOut {
		if r.ID == "db-lock-contention" {
			out = true
			t.Logf("ruled out db-lock-contention: %s", r.Why)
		}
	}
	if !out {
		t.Errorf("seed: db-lock-contention not ruled out: %+v", d.RuledOut)
	}
}

// freeAddr returns a free loopback address.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startLabProcess runs "stampede lab" with args until the test ends and
// waits for it to answer.
func startLabProcess(t *testing.T, addr string, args ...string) {
	t.Helper()
	cmd := stampedeCmd(append([]string{"lab", "--addr", addr}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("lab did not listen on %s:\n%s", addr, out.String())
}

// TestE2ESeedOnServices: the seed's configuration on PostgreSQL behind
// PgBouncer with Redis, run with "stampede run scenarios/seed.yaml" and the
// three probes: both causes found, lock contention ruled out on the
// PostgreSQL probe's wait:Lock readings.
func TestE2ESeedOnServices(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end runs of the lab take minutes")
	}
	pg := testenv.Postgres(t, testenv.PGOptions{MaxConnections: 150})
	// PgBouncer sized as the seed preset describes: pool 3, no reserve,
	// query_wait_timeout 2 s.
	b := testenv.PgBouncer(t, pg, testenv.BouncerOptions{DefaultPoolSize: 3, QueryWaitTimeout: 2 * time.Second, MaxClientConn: 1000})
	r := testenv.Redis(t)
	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	addr := freeAddr(t)
	startLabProcess(t, addr, "--preset", "seed", "--store", "postgres", "--dsn", b.DSN(), "--redis", r.URL(), "--log-dir", logs)
	users := filepath.Join(dir, "users.csv")
	ucmd := stampedeCmd("lab", "users", "--count", "100")
	ub, err := ucmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(users, ub, 0o644); err != nil {
		t.Fatal(err)
	}
	sc, err := os.ReadFile("../../scenarios/seed.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The scenario's users_file and logs are relative to it: run it from
	// a copy next to the lab's logs.
	scPath := filepath.Join(dir, "seed.yaml")
	if err := os.WriteFile(scPath, sc, 0o644); err != nil {
		t.Fatal(err)
	}
	run := filepath.Join(dir, "run")
	cmd := stampedeCmd("run", scPath, "--url", "http://"+addr, "-t", e2eDuration, "--quiet", "--out", run,
		"--probe-pgbouncer", b.StatsDSN(), "--probe-postgres", pg.SuperDSN(), "--probe-redis", r.URL(),
		"--log", "pgbouncer-server="+b.LogPath)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	if ee, ok := err.(*exec.ExitError); err != nil && (!ok || ee.ExitCode() != 3) {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	d := readDiagnosis(t, run)
	checkSeed(t, d)
	for _, ro := range d.RuledOut {
		if ro.ID == "db-lock-contention" && !strings.Contains(ro.Why, "wait:Lock") {
			t.Errorf("db-lock-contention ruled out without the PostgreSQL probe's wait:Lock readings: %s", ro.Why)
		}
	}
}

// TestE2ELocust: a Locust run of a fault mode, diagnosed from its CSVs and
// the lab's logs, gives the same top finding as stampede's own run of the
// fault.
func TestE2ELocust(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end runs of the lab take minutes")
	}
	locust, err := exec.LookPath("locust")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("locust not installed (apt-get install python3-locust)")
		}
		t.Skip("locust not installed")
	}
	const id = "db-pool-wait-timeout"
	// stampede's own run of the fault.
	sout := t.TempDir()
	runDemo(t, "--fault", id, "-t", e2eDuration, "--out", sout)
	own := readDiagnosis(t, filepath.Join(sout, id))
	checkTop(t, own, id)

	// The same fault under Locust: the lab with demo's knobs for it.
	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	addr := freeAddr(t)
	startLabProcess(t, addr, "--preset", "healthy", "--pbkdf2-iterations", "20000",
		"--pool-size", "3", "--reserve-pool-size", "0", "--query-wait-timeout", "2s", "--log-dir", logs)
	users := filepath.Join(dir, "users.csv")
	ub, err := stampedeCmd("lab", "users", "--count", "100").Output()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(users, ub, 0o644); err != nil {
		t.Fatal(err)
	}
	lf, _ := filepath.Abs("../../scenarios/locustfile.py")
	prefix := filepath.Join(dir, "locust")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, locust, "--headless", "-u", "100", "-r", "10", "-t", "30s", "--csv", prefix,
		"--csv-full-history", "--host", "http://"+addr, "-f", lf, "--only-summary")
	cmd.Env = append(os.Environ(), "LAB_USERS="+users)
	cmd.Dir = dir
	var lout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &lout, &lout
	err = cmd.Run()
	if ee, ok := err.(*exec.ExitError); err != nil && (!ok || ee.ExitCode() != 1) {
		t.Fatalf("locust: %v\n%s", err, lout.String())
	}
	dout := filepath.Join(dir, "diagnosis")
	dcmd := stampedeCmd("diagnose", "--locust", prefix, "--out", dout,
		"--log", "app-errors="+filepath.Join(logs, "errors.log"),
		"--log", "pgbouncer="+filepath.Join(logs, "pgbouncer.log"),
		"--log", "gunicorn="+filepath.Join(logs, "gunicorn.log"))
	var dbuf bytes.Buffer
	dcmd.Stdout, dcmd.Stderr = &dbuf, &dbuf
	if err := dcmd.Run(); err != nil {
		t.Fatalf("diagnose --locust: %v\n%s", err, dbuf.String())
	}
	imported := readDiagnosis(t, dout)
	t.Logf("stampede: %s", summarize(own))
	t.Logf("locust:   %s", summarize(imported))
	checkTop(t, imported, own.Findings[0].ID)
}

// keepArtifacts copies dir to $STAMPEDE_ARTIFACTS/runs/NAME when that is
// set (scripts/test sets it), so a failed end-to-end run can be read after
// the test removed its temporary directory.
func keepArtifacts(t *testing.T, name, dir string) {
	t.Helper()
	root := os.Getenv("STAMPEDE_ARTIFACTS")
	if root == "" {
		return
	}
	dst := filepath.Join(root, "runs", name)
	_ = os.RemoveAll(dst)
	if err := os.CopyFS(dst, os.DirFS(dir)); err != nil {
		t.Logf("keeping %s: %v", dir, err)
	}
}

// accuracyRow is one line of the accuracy table: a reference target's
// fault mode, the finding expected on top and the one obtained.
type accuracyRow struct {
	Target   string `json:"target"`
	Mode     string `json:"mode"`
	Want     string `json:"want"`
	Got      string `json:"got"`
	Status   string `json:"status"`
	Verdict  string `json:"verdict"`
	Findings string `json:"findings"`
}

// recordAccuracy appends the row of one end-to-end case to the file named by
// $STAMPEDE_ACCURACY, when set (scripts/accuracy reads it into the README's
// table). want "" means the healthy case: no confirmed finding, verdict pass.
func recordAccuracy(t *testing.T, target, mode, want string, d stampede.Diagnosis) {
	t.Helper()
	path := os.Getenv("STAMPEDE_ACCURACY")
	if path == "" {
		return
	}
	row := accuracyRow{Target: target, Mode: mode, Want: want, Verdict: d.Verdict, Findings: summarize(d)}
	if len(d.Findings) > 0 {
		row.Got, row.Status = d.Findings[0].ID, d.Findings[0].Status
	}
	b, _ := json.Marshal(row)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Logf("accuracy: %v", err)
		return
	}
	defer f.Close()
	_, _ = f.Write(append(b, '\n'))
}
