package k8s

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	klabels "k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"

	"github.com/stampede-load/stampede/internal/rundir"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// now is when the golden manifests were made.
var now = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

type goldenCase struct {
	name, scenario, users string
	o                     Options
}

var goldenCases = []goldenCase{
	{name: "seed-4", scenario: "seed.yaml",
		o: Options{Segments: 4, Image: "ghcr.io/stampede-load/stampede:0.1.0", Namespace: "load"}},
	{name: "open-3-shared-claim", scenario: "open.yaml",
		o: Options{Segments: 3, Image: "registry.local/stampede@sha256:0123", Name: "shop-peak", ResultsPVC: "load-results",
			StartAt: time.Date(2026, 11, 28, 11, 0, 0, 0, time.UTC), SoftSpread: true}},
	{name: "nothink-2-override", scenario: "nothink.yaml",
		o: Options{Segments: 2, Image: "stampede:dev", CPU: "2", Memory: "1Gi"}},
}

func buildCase(t *testing.T, c goldenCase) (*Manifests, []byte) {
	t.Helper()
	in, err := Read(filepath.Join("testdata", c.scenario), c.users)
	if err != nil {
		t.Fatal(err)
	}
	m, err := build(in, c.o, now)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := m.WriteYAML(&out); err != nil {
		t.Fatal(err)
	}
	return m, out.Bytes()
}

func TestGolden(t *testing.T) {
	for _, c := range goldenCases {
		t.Run(c.name, func(t *testing.T) {
			_, got := buildCase(t, c)
			path := filepath.Join("testdata", c.name+".golden.yaml")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("manifests differ from %s (go test -update rewrites it):\n%s", path, got)
			}
		})
	}
}

// decoder decodes strictly, as the API server would with strict field
// validation: unknown or duplicate fields and unknown kinds are errors.
func decoder(t *testing.T) runtime.Decoder {
	t.Helper()
	s := runtime.NewScheme()
	if err := corev1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := batchv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return serializer.NewCodecFactory(s, serializer.EnableStrict).UniversalDeserializer()
}

// documents splits the printed manifests; the first part is the comment.
func documents(t *testing.T, out []byte) [][]byte {
	t.Helper()
	parts := bytes.Split(out, []byte("---\n"))
	if len(parts) < 2 || !bytes.HasPrefix(parts[0], []byte("# stampede k8s: ")) {
		t.Fatalf("want a comment then documents separated by ---, got:\n%s", out)
	}
	for _, line := range bytes.Split(bytes.TrimSpace(parts[0]), []byte("\n")) {
		if !bytes.HasPrefix(line, []byte("#")) {
			t.Fatalf("the header holds a line that is not a comment: %q", line)
		}
	}
	return parts[1:]
}

func decodeAll(t *testing.T, out []byte) []runtime.Object {
	t.Helper()
	dec := decoder(t)
	var objs []runtime.Object
	for i, doc := range documents(t, out) {
		obj, _, err := dec.Decode(doc, nil, nil)
		if err != nil {
			t.Fatalf("document %d does not decode strictly: %v\n%s", i, err, doc)
		}
		objs = append(objs, obj)
	}
	return objs
}

func TestStrictDecode(t *testing.T) {
	for _, c := range goldenCases {
		t.Run(c.name, func(t *testing.T) {
			m, out := buildCase(t, c)
			objs := decodeAll(t, out)
			want := m.Objects()
			if len(objs) != len(want) {
				t.Fatalf("decoded %d objects, built %d", len(objs), len(want))
			}
			for i := range objs {
				if !equality.Semantic.DeepEqual(objs[i], want[i]) {
					t.Errorf("object %d changed through YAML:\ndecoded %#v\nbuilt   %#v", i, objs[i], want[i])
				}
			}
		})
	}
	// The decoder does refuse what the API server would.
	_, out := buildCase(t, goldenCases[0])
	docs := documents(t, out)
	job := docs[len(docs)-2]
	for name, bad := range map[string][]byte{
		"unknown field":   bytes.Replace(job, []byte("  completionMode: Indexed\n"), []byte("  completionMode: Indexed\n  completionsMode: Indexed\n"), 1),
		"duplicate field": bytes.Replace(job, []byte("  parallelism: 4\n"), []byte("  parallelism: 4\n  parallelism: 5\n"), 1),
		"unknown kind":    bytes.Replace(job, []byte("kind: Job\n"), []byte("kind: Jobs\n"), 1),
	} {
		if bytes.Equal(bad, job) {
			t.Fatalf("%s: the edit did not apply", name)
		}
		if _, _, err := decoder(t).Decode(bad, nil, nil); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}

func env(c corev1.Container, name string) (corev1.EnvVar, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e, true
		}
	}
	return corev1.EnvVar{}, false
}

func mount(c corev1.Container, path string) (corev1.VolumeMount, bool) {
	for _, m := range c.VolumeMounts {
		if m.MountPath == path {
			return m, true
		}
	}
	return corev1.VolumeMount{}, false
}

func TestJobFields(t *testing.T) {
	for _, c := range goldenCases {
		t.Run(c.name, func(t *testing.T) {
			m, out := buildCase(t, c)
			objs := decodeAll(t, out)
			var cm *corev1.ConfigMap
			var secret *corev1.Secret
			var jobs []*batchv1.Job
			for _, o := range objs {
				switch o := o.(type) {
				case *corev1.ConfigMap:
					cm = o
				case *corev1.Secret:
					secret = o
				case *batchv1.Job:
					jobs = append(jobs, o)
				}
			}
			if cm == nil || len(jobs) != 2 {
				t.Fatalf("want a ConfigMap and two Jobs, got %d objects", len(objs))
			}
			n := int32(c.o.Segments)
			load, merge := jobs[0], jobs[1]

			// The load Job.
			s := load.Spec
			if s.CompletionMode == nil || *s.CompletionMode != batchv1.IndexedCompletion {
				t.Errorf("completionMode = %v, want Indexed", s.CompletionMode)
			}
			if s.Completions == nil || *s.Completions != n || s.Parallelism == nil || *s.Parallelism != n {
				t.Errorf("completions, parallelism = %v, %v, want %d", s.Completions, s.Parallelism, n)
			}
			if s.BackoffLimitPerIndex == nil || *s.BackoffLimitPerIndex != 0 {
				t.Errorf("backoffLimitPerIndex = %v, want 0: a segment started late would not line up", s.BackoffLimitPerIndex)
			}
			if s.BackoffLimit == nil || *s.BackoffLimit != n {
				t.Errorf("backoffLimit = %v, want %d", s.BackoffLimit, n)
			}
			pod := s.Template.Spec
			for _, j := range jobs {
				if a := j.Spec.Template.Spec.AutomountServiceAccountToken; a == nil || *a {
					t.Errorf("%s: automountServiceAccountToken = %v, want false: the pods never call the API server", j.Name, a)
				}
			}
			if pod.RestartPolicy != corev1.RestartPolicyNever {
				t.Errorf("restartPolicy = %q, want Never (backoffLimitPerIndex needs it)", pod.RestartPolicy)
			}
			if len(pod.Containers) != 1 {
				t.Fatalf("%d containers, want 1", len(pod.Containers))
			}
			ct := pod.Containers[0]
			if ct.Image != c.o.Image {
				t.Errorf("image = %q, want %q", ct.Image, c.o.Image)
			}
			if want := SegmentArgs(); !slices.Equal(ct.Args, want) {
				t.Errorf("args = %q, want %q", ct.Args, want)
			}
			for name, want := range map[string]string{EnvSegments: strconv.Itoa(c.o.Segments), EnvStartAt: m.StartAt.Format(time.RFC3339)} {
				if e, ok := env(ct, name); !ok || e.Value != want {
					t.Errorf("env %s = %+v, want %q", name, e, want)
				}
			}
			if e, ok := env(ct, EnvIndex); !ok || e.ValueFrom == nil || e.ValueFrom.FieldRef == nil ||
				e.ValueFrom.FieldRef.FieldPath != "metadata.annotations['batch.kubernetes.io/job-completion-index']" {
				t.Errorf("env %s = %+v, want the completion index annotation", EnvIndex, e)
			}
			if start, err := time.Parse(time.RFC3339, m.StartAt.Format(time.RFC3339)); err != nil || !start.After(now) {
				t.Errorf("start %v: want a parseable instant after the manifests were made (%v)", m.StartAt, now)
			}
			if vm, ok := mount(ct, ConfigDir); !ok || !vm.ReadOnly || vm.Name != "config" {
				t.Errorf("config mount = %+v, want %s read-only", vm, ConfigDir)
			}
			if vm, ok := mount(ct, ResultsDir); !ok || vm.SubPath != m.Name || vm.ReadOnly {
				t.Errorf("results mount = %+v, want %s, subPath %s, writable", vm, ResultsDir, m.Name)
			}
			checkVolumes(t, pod, m, cm, secret, c.o)

			// Spread across nodes, over this run's segments only.
			if len(pod.TopologySpreadConstraints) != 1 {
				t.Fatalf("%d spread constraints, want 1", len(pod.TopologySpreadConstraints))
			}
			tsc := pod.TopologySpreadConstraints[0]
			wantWhen := corev1.DoNotSchedule
			if c.o.SoftSpread {
				wantWhen = corev1.ScheduleAnyway
			}
			if tsc.TopologyKey != corev1.LabelHostname || tsc.MaxSkew != 1 || tsc.WhenUnsatisfiable != wantWhen {
				t.Errorf("spread = %+v, want maxSkew 1 over %s, %s", tsc, corev1.LabelHostname, wantWhen)
			}
			sel, err := metav1.LabelSelectorAsSelector(tsc.LabelSelector)
			if err != nil {
				t.Fatal(err)
			}
			if !sel.Matches(klabels.Set(s.Template.Labels)) {
				t.Errorf("the spread's selector %s does not select the segments' pods %v", sel, s.Template.Labels)
			}
			if sel.Matches(klabels.Set(merge.Spec.Template.Labels)) {
				t.Errorf("the spread's selector %s selects the merge's pod too", sel)
			}
			other := klabels.Set{labelName: "stampede", labelInstance: "another-run", labelComponent: "segment"}
			if sel.Matches(other) {
				t.Errorf("the spread's selector %s selects another run's segments", sel)
			}

			// Resources: the sizing's, requests within limits.
			if !equality.Semantic.DeepEqual(ct.Resources, m.Sizing.Pod) {
				t.Errorf("resources = %+v, want %+v", ct.Resources, m.Sizing.Pod)
			}
			checkResources(t, "segment", ct.Resources)
			if c.o.CPU != "" {
				if got := ct.Resources.Requests[corev1.ResourceCPU]; got.String() != c.o.CPU {
					t.Errorf("cpu request = %s, want the override %s", got.String(), c.o.CPU)
				}
			}
			if c.o.Memory != "" {
				if got := ct.Resources.Requests[corev1.ResourceMemory]; got.String() != c.o.Memory {
					t.Errorf("memory request = %s, want the override %s", got.String(), c.o.Memory)
				}
			}

			// The merge Job: wait for the segments, then merge them.
			ms := merge.Spec
			if ms.BackoffLimit == nil || *ms.BackoffLimit != 0 {
				t.Errorf("merge backoffLimit = %v, want 0", ms.BackoffLimit)
			}
			mp := ms.Template.Spec
			if len(mp.InitContainers) != 1 || len(mp.Containers) != 1 {
				t.Fatalf("merge: %d init containers and %d containers, want 1 and 1", len(mp.InitContainers), len(mp.Containers))
			}
			dirs := SegmentDirs(c.o.Segments)
			wantMerge := append([]string{"merge", MergedDir}, dirs...)
			if got := mp.Containers[0].Args; !slices.Equal(got, wantMerge) {
				t.Errorf("merge args = %q, want %q", got, wantMerge)
			}
			wantWait := append([]string{"k8s", "wait", "--until", m.Until.Format(time.RFC3339)}, dirs...)
			if got := mp.InitContainers[0].Args; !slices.Equal(got, wantWait) {
				t.Errorf("wait args = %q, want %q", got, wantWait)
			}
			if !m.Until.After(m.StartAt) {
				t.Errorf("the merge waits until %v, not after the start %v", m.Until, m.StartAt)
			}
			for _, ct := range append(mp.InitContainers, mp.Containers...) {
				if vm, ok := mount(ct, ResultsDir); !ok || vm.SubPath != m.Name {
					t.Errorf("%s: results mount = %+v, want %s subPath %s", ct.Name, vm, ResultsDir, m.Name)
				}
				if ct.Image != c.o.Image {
					t.Errorf("%s: image = %q", ct.Name, ct.Image)
				}
				checkResources(t, ct.Name, ct.Resources)
			}
			if got, want := claimOf(mp), claimOf(pod); got != want || got != m.ClaimName {
				t.Errorf("the merge reads claim %q, the segments write %q, want %q", got, want, m.ClaimName)
			}
			if c.o.ResultsPVC != "" && m.ClaimName != c.o.ResultsPVC {
				t.Errorf("claim = %q, want the given %q", m.ClaimName, c.o.ResultsPVC)
			}
			if (m.Results == nil) != (c.o.ResultsPVC != "") {
				t.Errorf("a claim is created: %v; one was given: %q", m.Results != nil, c.o.ResultsPVC)
			}
		})
	}
}

func claimOf(p corev1.PodSpec) string {
	for _, v := range p.Volumes {
		if v.PersistentVolumeClaim != nil {
			return v.PersistentVolumeClaim.ClaimName
		}
	}
	return ""
}

// checkVolumes checks that /config holds the scenario from the ConfigMap,
// pointing at the users file from the Secret.
func checkVolumes(t *testing.T, pod corev1.PodSpec, m *Manifests, cm *corev1.ConfigMap, secret *corev1.Secret, o Options) {
	t.Helper()
	var cfg *corev1.ProjectedVolumeSource
	for _, v := range pod.Volumes {
		if v.Name == "config" {
			cfg = v.Projected
		}
	}
	if cfg == nil {
		t.Fatal("no projected config volume")
	}
	var gotCM, gotSecret string
	for _, s := range cfg.Sources {
		if s.ConfigMap != nil {
			gotCM = s.ConfigMap.Name
		}
		if s.Secret != nil {
			gotSecret = s.Secret.Name
		}
	}
	if gotCM != cm.Name {
		t.Errorf("config volume's ConfigMap = %q, want %q", gotCM, cm.Name)
	}
	scenario := cm.Data[filepath.Base(ScenarioFile)]
	if scenario == "" {
		t.Fatalf("the ConfigMap has no %s", filepath.Base(ScenarioFile))
	}
	if secret == nil {
		if gotSecret != "" || strings.Contains(scenario, "users_file") {
			t.Errorf("no users file, but the volume names Secret %q or the scenario a users_file", gotSecret)
		}
		return
	}
	if gotSecret != secret.Name || len(secret.Data[filepath.Base(UsersFile)]) == 0 {
		t.Errorf("config volume's Secret = %q, want %q holding %s", gotSecret, secret.Name, filepath.Base(UsersFile))
	}
	if !strings.Contains(scenario, "users_file: "+UsersFile) {
		t.Errorf("the ConfigMap's scenario does not point at %s:\n%s", UsersFile, scenario)
	}
	if strings.Contains(scenario, string(secret.Data[filepath.Base(UsersFile)])) {
		t.Error("the ConfigMap holds the users file")
	}
}

func checkResources(t *testing.T, what string, r corev1.ResourceRequirements) {
	t.Helper()
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, lim := r.Requests[name], r.Limits[name]
		if req.Sign() <= 0 || lim.Cmp(req) < 0 {
			t.Errorf("%s: %s request %s, limit %s: want a positive request within the limit", what, name, req.String(), lim.String())
		}
	}
}

func TestRewriteUsersFile(t *testing.T) {
	tests := []struct {
		name, in, want, err string
	}{
		{name: "plain with a comment", in: "target: http://x\nusers_file: users.csv   # accounts\nx: 1\n",
			want: "target: http://x\nusers_file: /config/users.csv   # accounts\nx: 1\n"},
		{name: "double-quoted", in: "users_file: \"dir/my users.csv\" # c\n", want: "users_file: /config/users.csv # c\n"},
		{name: "single-quoted", in: "users_file: 'a.csv'\n", want: "users_file: /config/users.csv\n"},
		{name: "non-ASCII before", in: "# café\ntarget: http://é\nusers_file: é.csv\n", want: "# café\ntarget: http://é\nusers_file: /config/users.csv\n"},
		{name: "flow mapping", in: "{target: x, users_file: a.csv}\n", want: "{target: x, users_file: /config/users.csv}\n"},
		{name: "value on the next line", in: "users_file:\n  a.csv\n", want: "users_file:\n  /config/users.csv\n"},
		{name: "absent", in: "target: http://x\n", want: "target: http://x\nusers_file: /config/users.csv\n"},
		{name: "absent, no final newline", in: "target: http://x", want: "target: http://x\nusers_file: /config/users.csv\n"},
		{name: "same text elsewhere", in: "# users_file: a.csv\nusers_file: a.csv\n", want: "# users_file: a.csv\nusers_file: /config/users.csv\n"},
		{name: "block scalar", in: "users_file: |\n  a.csv\n", err: "one line"},
		{name: "anchor", in: "users_file: &u a.csv\n", err: "one line"},
		{name: "tag", in: "users_file: !!str a.csv\n", err: "one line"},
		{name: "quoted over two lines", in: "users_file: \"a\n  b.csv\"\n", err: "one line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := setUsersFile([]byte(tt.in))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func FuzzSetUsersFile(f *testing.F) {
	for _, s := range []string{"users_file: a.csv\n", "target: x\nusers_file: 'a'\n", "{users_file: a}", "users_file:\n  a\n", "# é\nusers_file: é\n", "- a\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		out, err := setUsersFile(src)
		if err != nil {
			return
		}
		// The value is written once, the rest kept around it.
		if got, want := bytes.Count(out, []byte(UsersFile)), bytes.Count(src, []byte(UsersFile))+1; got != want {
			t.Fatalf("rewrite of %q: %s %d times, want %d: %q", src, UsersFile, got, want, out)
		}
		if len(out) < len(UsersFile) {
			t.Fatalf("rewrite of %q is shorter than the value: %q", src, out)
		}
	})
}

func TestBuildErrors(t *testing.T) {
	future := now.Add(time.Hour)
	tests := []struct {
		name, scenario, users string
		o                     Options
		err                   string
	}{
		{name: "no segments", scenario: "seed.yaml", o: Options{Image: "x"}, err: "--segments 0: want at least 1"},
		{name: "no image", scenario: "seed.yaml", o: Options{Segments: 2}, err: "--image: required"},
		{name: "image with a space", scenario: "seed.yaml", o: Options{Segments: 2, Image: "a b"}, err: "no spaces"},
		{name: "name not DNS", scenario: "seed.yaml", o: Options{Segments: 2, Image: "x", Name: "Load_Test"}, err: "--name \"Load_Test\": not a DNS-1123 label"},
		{name: "name too long", scenario: "seed.yaml", o: Options{Segments: 2, Image: "x", Name: strings.Repeat("a", 53)}, err: "at most 52 characters"},
		{name: "namespace not DNS", scenario: "seed.yaml", o: Options{Segments: 2, Image: "x", Namespace: "-load"}, err: "--namespace \"-load\""},
		{name: "claim not DNS", scenario: "seed.yaml", o: Options{Segments: 2, Image: "x", ResultsPVC: "Results!"}, err: "--results-pvc \"Results!\""},
		{name: "more segments than users", scenario: "seed.yaml", o: Options{Segments: 101, Image: "x"}, err: "more segments than the scenario's 100 users"},
		{name: "start in the past", scenario: "seed.yaml", o: Options{Segments: 2, Image: "x", StartAt: now.Add(-time.Minute)}, err: "--start-at 2026-11-28T09:59:00Z: already past"},
		{name: "bad cpu", scenario: "seed.yaml", o: Options{Segments: 2, Image: "x", StartAt: future, CPU: "lots"}, err: "cpu \"lots\""},
		{name: "bad memory", scenario: "seed.yaml", o: Options{Segments: 2, Image: "x", Memory: "-1Gi"}, err: "memory \"-1Gi\""},
		{name: "too few accounts", scenario: "seed.yaml", users: "testdata/users-10.csv", o: Options{Segments: 2, Image: "x"}, err: "users_file has 10 rows, fewer than the 100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, err := Read(filepath.Join("testdata", tt.scenario), tt.users)
			if err == nil {
				_, err = build(in, tt.o, now)
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("err = %v, want %q", err, tt.err)
			}
		})
	}
}

func TestWarnings(t *testing.T) {
	m, _ := buildCase(t, goldenCases[2])
	got := strings.Join(m.Warnings, "\n")
	for _, want := range []string{"probes.pid 4242", "postgres://stats:xxxxx@db.internal:5432/app", "no think time"} {
		if !strings.Contains(got, want) {
			t.Errorf("warnings lack %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "hunter2") {
		t.Errorf("a warning shows the DSN's password:\n%s", got)
	}
	if m, _ := buildCase(t, goldenCases[0]); len(m.Warnings) != 0 {
		t.Errorf("the seed in the cluster warns: %q", m.Warnings)
	}
}

func TestDefaultName(t *testing.T) {
	start := time.Date(2026, 11, 28, 10, 2, 0, 0, time.UTC)
	tests := []struct{ path, want string }{
		{"scenarios/seed.yaml", "stampede-seed-20261128-100200"},
		{"My Login_Test.v2.yml", "stampede-my-login-test-v2-20261128-100200"},
		{"a-very-long-scenario-file-name-indeed.yaml", "stampede-a-very-long-scenario-20261128-100200"},
		{"___.yaml", "stampede-run-20261128-100200"},
	}
	for _, tt := range tests {
		got := defaultName(tt.path, start)
		if got != tt.want {
			t.Errorf("defaultName(%q) = %q, want %q", tt.path, got, tt.want)
		}
		if err := dnsLabel("name", got, maxNameLen); err != nil {
			t.Errorf("defaultName(%q): %v", tt.path, err)
		}
	}
}

func TestWait(t *testing.T) {
	dir := t.TempDir()
	done, late, never := filepath.Join(dir, "seg-0"), filepath.Join(dir, "seg-1"), filepath.Join(dir, "seg-2")
	writeMeta := func(d string, end time.Time) {
		t.Helper()
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := rundir.WriteMeta(d, &rundir.Meta{Run: filepath.Base(d), Start: now, End: end, Partial: end.IsZero()}); err != nil {
			t.Fatal(err)
		}
	}
	writeMeta(done, now.Add(time.Minute))
	writeMeta(never, time.Time{}) // started, never ended

	t.Run("all finished", func(t *testing.T) {
		var log bytes.Buffer
		// until is past: finished segments are still seen before giving up.
		left, err := Wait(context.Background(), []string{done}, now, time.Millisecond, &log)
		if err != nil || left != nil {
			t.Fatalf("Wait = %v, %v; want nil, nil", left, err)
		}
		if !strings.Contains(log.String(), "seg-0: finished at 2026-11-28T10:01:00Z") {
			t.Errorf("log = %q", log.String())
		}
	})
	t.Run("deadline", func(t *testing.T) {
		var log bytes.Buffer
		// seg-1 finishes while Wait looks; seg-2 never does.
		go func() {
			time.Sleep(20 * time.Millisecond)
			writeMeta(late, now.Add(2*time.Minute))
		}()
		left, err := Wait(context.Background(), []string{done, late, never}, time.Now().Add(time.Second), 5*time.Millisecond, &log)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(left, []string{never}) {
			t.Errorf("unfinished = %q, want %q\n%s", left, never, log.String())
		}
		for _, want := range []string{"seg-0: finished", "seg-1: finished", "seg-2: not finished at"} {
			if !strings.Contains(log.String(), want) {
				t.Errorf("log lacks %q:\n%s", want, log.String())
			}
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		left, err := Wait(ctx, []string{never, filepath.Join(dir, "missing")}, time.Now().Add(time.Hour), time.Millisecond, &bytes.Buffer{})
		if err == nil || len(left) != 2 {
			t.Fatalf("Wait = %v, %v; want both unfinished and an error", left, err)
		}
	})
}
