package main

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/stampede-load/stampede/internal/k8s"
	"github.com/stampede-load/stampede/internal/load"
	"github.com/stampede-load/stampede/internal/rundir"
)

const k8sScenario = "../../internal/k8s/testdata/seed.yaml"

func k8sManifests(t *testing.T, segments int) *k8s.Manifests {
	t.Helper()
	in, err := k8s.Read(k8sScenario, "")
	if err != nil {
		t.Fatal(err)
	}
	m, err := k8s.Build(in, k8s.Options{Segments: segments, Image: "stampede:test", StartAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

var varRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// expand does what the kubelet does to a container's arguments: $(NAME)
// becomes the value of the container's variable NAME.
func expand(t *testing.T, args []string, env map[string]string) []string {
	t.Helper()
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = varRef.ReplaceAllStringFunc(a, func(ref string) string {
			name := ref[2 : len(ref)-1]
			v, ok := env[name]
			if !ok {
				t.Fatalf("argument %q refers to $(%s), which the container does not define", a, name)
			}
			return v
		})
	}
	return out
}

// podEnv is a segment pod's environment: the Job's values, and the index
// that Kubernetes puts in the completion-index annotation.
func podEnv(t *testing.T, c corev1.Container, index int) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && strings.Contains(e.ValueFrom.FieldRef.FieldPath, "job-completion-index"):
			env[e.Name] = strconv.Itoa(index)
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		default:
			t.Fatalf("env %s: a source this test does not know", e.Name)
		}
	}
	return env
}

// TestK8sSegmentArgs runs each segment's command line, as the Job gives it,
// through "stampede run"'s flag parser, and the scenario and users file as
// the pods mount them through the scenario compiler: the manifests cannot
// drift from the CLI.
func TestK8sSegmentArgs(t *testing.T) {
	const n = 3
	m := k8sManifests(t, n)
	c := m.Load.Spec.Template.Spec.Containers[0]
	for i := range n {
		env := podEnv(t, c, i)
		if env[k8s.EnvIndex] != strconv.Itoa(i) || env[k8s.EnvSegments] != strconv.Itoa(n) {
			t.Fatalf("pod %d: env %v", i, env)
		}
		args := expand(t, c.Args, env)
		if len(args) == 0 || args[0] != "run" {
			t.Fatalf("pod %d: args %q: want the run command", i, args)
		}
		if _, ok := commands[args[0]]; !ok {
			t.Fatalf("no command %q", args[0])
		}
		fs := flag.NewFlagSet("run", flag.ContinueOnError)
		var f runFlags
		f.register(fs)
		pos, err := parseAnyOrder(fs, args[1:])
		if err != nil {
			t.Fatalf("pod %d: stampede run %q: %v", i, args[1:], err)
		}
		if !slices.Equal(pos, []string{k8s.ScenarioFile}) {
			t.Errorf("pod %d: scenario %q, want %s", i, pos, k8s.ScenarioFile)
		}
		if want := filepath.Join(k8s.ResultsDir, "seg-"+strconv.Itoa(i)); f.out != want {
			t.Errorf("pod %d: --out %q, want %q", i, f.out, want)
		}
		if !f.quiet || !f.noDiagnose {
			t.Errorf("pod %d: --quiet %v --no-diagnose %v, want both", i, f.quiet, f.noDiagnose)
		}
		if want := k8s.SegmentDirs(n)[i]; f.out != want {
			t.Errorf("pod %d writes %s, the merge reads %s", i, f.out, want)
		}
	}

	// The scenario of the ConfigMap with the users file of the Secret, where
	// the pods find them, compiles to the scenario's load.
	sc, err := load.ParseScenario(k8s.ScenarioFile, []byte(m.Config.Data[filepath.Base(k8s.ScenarioFile)]))
	if err != nil {
		t.Fatal(err)
	}
	if sc.UsersFile != k8s.UsersFile {
		t.Fatalf("users_file = %q, want %q", sc.UsersFile, k8s.UsersFile)
	}
	dir := t.TempDir()
	sc.UsersFile = filepath.Join(dir, filepath.Base(k8s.UsersFile))
	if err := os.WriteFile(sc.UsersFile, m.Users.Data[filepath.Base(k8s.UsersFile)], 0o600); err != nil {
		t.Fatal(err)
	}
	plan, err := sc.Compile()
	if err != nil {
		t.Fatal(err)
	}
	if plan.Users != 100 || len(plan.Rows) != 100 {
		t.Errorf("the mounted scenario has %d users and %d accounts, want 100 and 100", plan.Users, len(plan.Rows))
	}
}

// TestK8sWaitArgs runs the merge Job's first container's command line, its
// directories moved to a temporary one holding finished runs.
func TestK8sWaitArgs(t *testing.T) {
	const n = 2
	m := k8sManifests(t, n)
	spec := m.Merge.Spec.Template.Spec
	args := spec.InitContainers[0].Args
	dir := t.TempDir()
	for i, a := range args {
		if strings.HasPrefix(a, k8s.ResultsDir+"/") {
			args[i] = filepath.Join(dir, strings.TrimPrefix(a, k8s.ResultsDir+"/"))
			if err := os.MkdirAll(args[i], 0o755); err != nil {
				t.Fatal(err)
			}
			if err := rundir.WriteMeta(args[i], &rundir.Meta{Start: m.StartAt, End: m.StartAt.Add(time.Minute)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	var stdout, stderr bytes.Buffer
	if code := realMain(args, &stdout, &stderr); code != exitOK {
		t.Fatalf("stampede %q: exit %d\n%s%s", args, code, stdout.String(), stderr.String())
	}
	for i := range n {
		if want := "seg-" + strconv.Itoa(i) + ": finished"; !strings.Contains(stdout.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, stdout.String())
		}
	}
	if got := spec.Containers[0].Args; len(got) != n+2 || got[0] != "merge" {
		t.Errorf("merge args = %q", got)
	}
}

func TestK8sCommand(t *testing.T) {
	cmd := stampedeCmd("k8s", k8sScenario, "--segments", "2", "--image", "stampede:test", "--namespace", "load")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("stampede k8s: %v\n%s", err, stderr.String())
	}
	out := stdout.String()
	if !strings.HasPrefix(out, "# stampede k8s: stampede-seed-") || strings.Count(out, "\n---\n") != 5 || !strings.Contains(out, "completionMode: Indexed") {
		t.Errorf("stdout is not the manifests:\n%s", out)
	}
	if strings.Contains(out, "pass-001") {
		t.Error("the users file's passwords are in the clear in the manifests (want them in the Secret's data)")
	}
	if !strings.Contains(stderr.String(), "kubectl -n load logs job/stampede-seed-") {
		t.Errorf("stderr lacks how to read the merged report:\n%s", stderr.String())
	}

	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"k8s", k8sScenario, "--image", "x"}, "Error: k8s: --segments 0: want at least 1 segment"},
		{[]string{"k8s", k8sScenario, "--segments", "2"}, "Error: k8s: --image: required"},
		{[]string{"k8s", "--segments", "2", "--image", "x"}, "Error: k8s: one scenario file, got 0"},
		{[]string{"k8s", k8sScenario, "--segments", "2", "--image", "x", "--start-at", "tomorrow"}, "want an RFC 3339 instant"},
		{[]string{"k8s", k8sScenario, "--segments", "2", "--image", "x", "--users-file", "missing.csv"}, "Error: --users-file: open missing.csv"},
		{[]string{"k8s", "wait"}, "Error: k8s wait: no run directory"},
	} {
		cmd := stampedeCmd(tt.args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != exitError {
			t.Errorf("stampede %q: %v, want exit %d", tt.args, err, exitError)
		}
		if !strings.Contains(stderr.String(), tt.want) || stdout.Len() != 0 {
			t.Errorf("stampede %q: stderr %q, stdout %q; want %q on stderr only", tt.args, stderr.String(), stdout.String(), tt.want)
		}
	}

	help, err := stampedeCmd("help").Output()
	if err != nil || !strings.Contains(string(help), "  k8s ") {
		t.Errorf("stampede help does not list k8s: %v\n%s", err, help)
	}
	h := stampedeCmd("help", "k8s")
	var hs bytes.Buffer
	h.Stderr = &hs
	if err := h.Run(); err != nil || !strings.Contains(hs.String(), "--segments") || !strings.Contains(hs.String(), "stampede k8s wait") {
		t.Errorf("stampede help k8s: %v\n%s", err, hs.String())
	}
}

// dockerfile holds what the test reads of the Dockerfile.
type dockerfile struct {
	build, user, copyTo, entrypoint string
}

func readDockerfile(t *testing.T) dockerfile {
	t.Helper()
	f, err := os.Open("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var d dockerfile
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "RUN ") && strings.Contains(line, "go build"):
			d.build = strings.TrimPrefix(line, "RUN ")
		case strings.HasPrefix(line, "USER "):
			d.user = strings.TrimPrefix(line, "USER ")
		case strings.HasPrefix(line, "COPY --from=build "):
			fields := strings.Fields(line)
			d.copyTo = fields[len(fields)-1]
		case strings.HasPrefix(line, "ENTRYPOINT "):
			d.entrypoint = strings.TrimPrefix(line, "ENTRYPOINT ")
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestDockerfileBuild runs the Dockerfile's go build line as written (no
// Docker engine here) and checks that the binary is statically linked and
// runs, and that the image's user is the one the pods run as.
func TestDockerfileBuild(t *testing.T) {
	d := readDockerfile(t)
	if d.entrypoint != `["`+d.copyTo+`"]` {
		t.Errorf("ENTRYPOINT %s is not the binary copied to %s", d.entrypoint, d.copyTo)
	}
	m := k8sManifests(t, 1)
	sc := m.Load.Spec.Template.Spec.SecurityContext
	if want := strconv.FormatInt(*sc.RunAsUser, 10) + ":" + strconv.FormatInt(*sc.RunAsGroup, 10); d.user != want {
		t.Errorf("Dockerfile USER %q, the pods run as %q", d.user, want)
	}
	if !strings.HasPrefix(d.build, "CGO_ENABLED=0 go build ") || !strings.Contains(d.build, "-o /out/stampede ./cmd/stampede") {
		t.Fatalf("the Dockerfile's build line is not a CGO_ENABLED=0 go build of ./cmd/stampede: %q", d.build)
	}
	if testing.Short() {
		t.Skip("builds the binary again")
	}
	bin := filepath.Join(t.TempDir(), "stampede")
	line := strings.ReplaceAll(d.build, "/out/stampede", bin)
	line = strings.ReplaceAll(line, "${VERSION}", "v9.9.9-docker")
	build := exec.Command("sh", "-c", line)
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", line, err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("the binary has a %v program header: it is dynamically linked", p.Type)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the binary needs %v", libs)
	}
	if out, err := exec.Command(bin, "version").Output(); err != nil || strings.TrimSpace(string(out)) != "stampede v9.9.9-docker" {
		t.Errorf("stampede version = %q, %v; want the VERSION build argument", out, err)
	}
	if out, err := exec.Command(bin, "help").Output(); err != nil || !strings.Contains(string(out), "k8s") {
		t.Errorf("stampede help: %v\n%s", err, out)
	}
	if ldd, err := exec.LookPath("ldd"); err == nil {
		out, _ := exec.Command(ldd, bin).CombinedOutput()
		if !strings.Contains(string(out), "not a dynamic executable") && !strings.Contains(string(out), "statically linked") {
			t.Errorf("ldd %s: %s", bin, out)
		}
	}
}
