// Package k8s builds the Kubernetes objects that run a scenario in N
// segments on a cluster: a ConfigMap with the scenario, a Secret with its
// users file, an Indexed Job whose pods each run one segment into a shared
// results volume, and a Job that waits for the segments and merges them.
// Build is pure: the scenario and options in, the API objects out.
package k8s

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/load"
)

// Where the pods find their files. A segment runs
//
//	stampede run /config/scenario.yaml --quiet --no-diagnose --out /results/seg-$(JOB_COMPLETION_INDEX)
//
// and the merge
//
//	stampede merge /results/merged /results/seg-0 ... /results/seg-(N-1)
const (
	ConfigDir    = "/config"
	ScenarioFile = ConfigDir + "/scenario.yaml"
	UsersFile    = ConfigDir + "/users.csv"
	ResultsDir   = "/results"
	MergedDir    = ResultsDir + "/merged"
)

// The environment of a segment's pod. Kubernetes sets JOB_COMPLETION_INDEX
// in an Indexed Job's pods (the Job declares it too, so that the
// $(JOB_COMPLETION_INDEX) of the command line expands on every version);
// "stampede run" reads the segment i of N from it and STAMPEDE_SEGMENTS,
// and the instant all segments start from STAMPEDE_START_AT (RFC 3339).
const (
	EnvIndex    = "JOB_COMPLETION_INDEX"
	EnvSegments = "STAMPEDE_SEGMENTS"
	EnvStartAt  = "STAMPEDE_START_AT"
)

// DefaultStartDelay is how long after the manifests are made the segments
// start when no start instant is given: time to apply them, pull the image
// and schedule the pods.
const DefaultStartDelay = 2 * time.Minute

// runAs is the user and group of the pods: distroless's nonroot, the
// Dockerfile's USER.
const runAs = 65532

// The labels every object carries; instance is the run's name.
const (
	labelName      = "app.kubernetes.io/name"
	labelInstance  = "app.kubernetes.io/instance"
	labelComponent = "app.kubernetes.io/component"
)

// maxNameLen keeps the run's name short enough for its suffixes: an
// Indexed Job's pod is named NAME-INDEX-xxxxx and its host NAME-INDEX,
// labels and host names hold at most 63 characters, and the merge Job is
// NAME-merge.
const maxNameLen = 52

// maxObjectData is the most a ConfigMap or a Secret may hold.
const maxObjectData = 1 << 20

// Input is the scenario as the pods will run it: its file as written, its
// compiled plan (which sizes the pods) and its users file. Read makes it
// from the files.
type Input struct {
	// ScenarioPath names the scenario in errors and in the default name.
	ScenarioPath string
	Scenario     []byte
	Plan         *load.Plan
	// UsersPath names the users file in errors; Users is its content, nil
	// when the scenario has none.
	UsersPath string
	Users     []byte
}

// Read reads and compiles the scenario file and reads its users file:
// usersPath when not empty, else the scenario's users_file (relative to
// the scenario's directory, as "stampede run" reads it).
func Read(scenarioPath, usersPath string) (Input, error) {
	in := Input{ScenarioPath: scenarioPath}
	var err error
	if in.Scenario, err = os.ReadFile(scenarioPath); err != nil {
		return in, fmt.Errorf("scenario: %w", err)
	}
	sc, err := load.ParseScenario(scenarioPath, in.Scenario)
	if err != nil {
		return in, err
	}
	if usersPath != "" {
		// A path given on the command line is the working directory's;
		// Compile would take it as the scenario's.
		if sc.UsersFile, err = filepath.Abs(usersPath); err != nil {
			return in, fmt.Errorf("--users-file: %w", err)
		}
		in.UsersPath = usersPath
	} else if sc.UsersFile != "" {
		in.UsersPath = sc.UsersFile
		if !filepath.IsAbs(in.UsersPath) {
			in.UsersPath = filepath.Join(filepath.Dir(scenarioPath), in.UsersPath)
		}
	}
	if in.UsersPath != "" {
		if in.Users, err = os.ReadFile(in.UsersPath); err != nil {
			if usersPath != "" {
				return in, fmt.Errorf("--users-file: %w", err)
			}
			return in, fmt.Errorf("%s: users_file: %w", sc.Pos("$.users_file"), err)
		}
	}
	if in.Plan, err = sc.Compile(); err != nil {
		return in, err
	}
	return in, nil
}

// Options are the choices of "stampede k8s". Segments and Image are
// required; the zero value of every other field has a default.
type Options struct {
	// Segments is the number of pods that share the load (N ≥ 1).
	Segments int
	// Image is the container image whose entrypoint is stampede.
	Image string
	// Name prefixes every object and names the run's directory on the
	// results volume; default stampede-SCENARIO-YYYYMMDD-HHMMSS (the start).
	Name string
	// Namespace of the objects; empty leaves it to kubectl's context.
	Namespace string
	// ResultsPVC is an existing ReadWriteMany claim for the results; empty
	// creates one, NAME-results, sized from the estimate.
	ResultsPVC string
	// StartAt is the instant every segment starts; zero is
	// DefaultStartDelay after the manifests are made.
	StartAt time.Time
	// CPU and Memory replace the estimated requests of a segment's pod
	// (Kubernetes quantities: 500m, 2, 512Mi); limits are twice them.
	CPU, Memory string
	// SoftSpread lets two segments share a node when the spread cannot be
	// kept (ScheduleAnyway) instead of leaving a pod pending.
	SoftSpread bool
}

// Validate checks the options, naming the flag of a bad one.
func (o *Options) Validate() error {
	if o.Segments < 1 {
		return fmt.Errorf("--segments %d: want at least 1 segment", o.Segments)
	}
	if o.Segments > 100000 {
		return fmt.Errorf("--segments %d: an Indexed Job runs at most 100000", o.Segments)
	}
	if o.Image == "" {
		return errors.New("--image: required (the image whose entrypoint is stampede, e.g. built from the Dockerfile)")
	}
	if strings.ContainsAny(o.Image, " \t\n") {
		return fmt.Errorf("--image %q: an image reference has no spaces", o.Image)
	}
	if o.Name != "" {
		if err := dnsLabel("--name", o.Name, maxNameLen); err != nil {
			return err
		}
	}
	if o.Namespace != "" {
		if err := dnsLabel("--namespace", o.Namespace, 63); err != nil {
			return err
		}
	}
	if o.ResultsPVC != "" {
		if errs := validation.IsDNS1123Subdomain(o.ResultsPVC); len(errs) > 0 {
			return fmt.Errorf("--results-pvc %q: not a valid claim name: %s", o.ResultsPVC, strings.Join(errs, "; "))
		}
	}
	return nil
}

func dnsLabel(flag, v string, maxLen int) error {
	if len(v) > maxLen {
		return fmt.Errorf("%s %q: at most %d characters, got %d", flag, v, maxLen, len(v))
	}
	if errs := validation.IsDNS1123Label(v); len(errs) > 0 {
		return fmt.Errorf("%s %q: not a DNS-1123 label: %s", flag, v, strings.Join(errs, "; "))
	}
	return nil
}

// Manifests are the objects of a run on Kubernetes, in the order they are
// applied.
type Manifests struct {
	// Name is the run's name: the objects' prefix and its directory on
	// the results volume.
	Name    string
	StartAt time.Time
	// Until is when the merge stops waiting for unfinished segments.
	Until    time.Time
	Segments int
	Sizing   Sizing
	// ClaimName is the results volume's claim.
	ClaimName string

	Config  *corev1.ConfigMap
	Users   *corev1.Secret                // nil without a users file
	Results *corev1.PersistentVolumeClaim // nil with Options.ResultsPVC
	Load    *batchv1.Job
	Merge   *batchv1.Job

	// Warnings are what the scenario asks that a pod cannot give.
	Warnings []string
}

// Objects returns the objects in the order they are applied.
func (m *Manifests) Objects() []any {
	objs := []any{m.Config}
	if m.Users != nil {
		objs = append(objs, m.Users)
	}
	if m.Results != nil {
		objs = append(objs, m.Results)
	}
	return append(objs, m.Load, m.Merge)
}

// Build returns the manifests that run the scenario in o.Segments pods.
func Build(in Input, o Options) (*Manifests, error) { return build(in, o, time.Now()) }

func build(f Input, o Options, now time.Time) (*Manifests, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	plan := f.Plan
	if plan == nil {
		return nil, errors.New("k8s: no plan: the scenario was not compiled")
	}
	scenario, sc, err := rewriteUsersFile(f)
	if err != nil {
		return nil, err
	}
	if plan.Users < o.Segments {
		what := "users"
		if plan.Model == load.Open {
			what = "max_users"
		}
		return nil, fmt.Errorf("--segments %d: more segments than the scenario's %d %s: a segment would have none", o.Segments, plan.Users, what)
	}
	if len(scenario) > maxObjectData {
		return nil, fmt.Errorf("%s: %d bytes: a ConfigMap holds at most 1 MiB", f.ScenarioPath, len(scenario))
	}
	if len(f.Users) > maxObjectData {
		return nil, fmt.Errorf("%s: %d bytes: a Secret holds at most 1 MiB", f.UsersPath, len(f.Users))
	}
	sz, err := size(plan, o.Segments, o.CPU, o.Memory)
	if err != nil {
		return nil, err
	}

	start := o.StartAt
	if start.IsZero() {
		start = now.Add(DefaultStartDelay).Truncate(time.Second)
	}
	if start.Before(now) {
		return nil, fmt.Errorf("--start-at %s: already past (it is %s)", start.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	name := o.Name
	if name == "" {
		name = defaultName(f.ScenarioPath, start)
	}
	m := &Manifests{Name: name, StartAt: start.UTC(), Segments: o.Segments, Sizing: sz, ClaimName: o.ResultsPVC}
	// The merge waits for the segments until the run's duration after the
	// start, and ten minutes for their final files; a segment still
	// unfinished then is merged as it is (the merge names it).
	m.Until = m.StartAt.Add(plan.Duration + 10*time.Minute)
	m.Warnings = warnings(sc, plan, sz)

	meta := func(suffix, component string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: name + suffix, Namespace: o.Namespace, Labels: labels(name, component)}
	}
	m.Config = &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: meta("-config", "config"),
		Data:       map[string]string{path.Base(ScenarioFile): string(scenario)},
	}
	if f.Users != nil {
		// The users file holds the accounts' passwords: a Secret, not the
		// ConfigMap, so that reading the run's configuration does not
		// give them away.
		m.Users = &corev1.Secret{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
			ObjectMeta: meta("-users", "config"),
			Type:       corev1.SecretTypeOpaque,
			Data:       map[string][]byte{path.Base(UsersFile): f.Users},
		}
	}
	if m.ClaimName == "" {
		m.ClaimName = name + "-results"
		m.Results = &corev1.PersistentVolumeClaim{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "PersistentVolumeClaim"},
			ObjectMeta: meta("-results", "results"),
			Spec: corev1.PersistentVolumeClaimSpec{
				// Every segment's pod writes to it, on different nodes.
				AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany},
				Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: sz.Results}},
			},
		}
	}
	// Bound the load Job: until the start, the run, and fifteen minutes
	// for the final files.
	deadline := int64((start.Sub(now) + plan.Duration + 15*time.Minute).Seconds())
	m.Load = loadJob(m, o, deadline, meta("", "segment"))
	m.Merge = mergeJob(m, o, meta("-merge", "merge"))
	return m, nil
}

// SegmentArgs are the arguments of a segment's container (its entrypoint
// is stampede); Kubernetes expands $(JOB_COMPLETION_INDEX).
func SegmentArgs() []string {
	return []string{"run", ScenarioFile, "--quiet", "--no-diagnose", "--out", ResultsDir + "/seg-$(" + EnvIndex + ")"}
}

// SegmentDirs are the segments' run directories as the merge sees them.
func SegmentDirs(n int) []string {
	dirs := make([]string, n)
	for i := range dirs {
		dirs[i] = ResultsDir + "/seg-" + strconv.Itoa(i)
	}
	return dirs
}

func loadJob(m *Manifests, o Options, deadline int64, meta metav1.ObjectMeta) *batchv1.Job {
	n := int32(m.Segments)
	spread := corev1.DoNotSchedule
	if o.SoftSpread {
		spread = corev1.ScheduleAnyway
	}
	honor := corev1.NodeInclusionPolicyHonor
	env := []corev1.EnvVar{
		{Name: EnvIndex, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{
			FieldPath: "metadata.annotations['" + batchv1.JobCompletionIndexAnnotation + "']"}}},
		{Name: EnvSegments, Value: strconv.Itoa(m.Segments)},
		{Name: EnvStartAt, Value: m.StartAt.Format(time.RFC3339)},
		goMemLimit(m.Sizing.Pod),
	}
	c := corev1.Container{
		Name: "stampede", Image: o.Image, Args: SegmentArgs(), Env: env,
		Resources: m.Sizing.Pod,
		VolumeMounts: []corev1.VolumeMount{
			{Name: "config", MountPath: ConfigDir, ReadOnly: true},
			resultsMount(m.Name),
			{Name: "tmp", MountPath: "/tmp"},
		},
		SecurityContext: containerSecurity(),
	}
	volumes := []corev1.Volume{configVolume(m), resultsVolume(m.ClaimName), tmpVolume()}
	spec := podSpec(meta.Labels, []corev1.Container{c}, volumes)
	spec.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{
		MaxSkew: 1, TopologyKey: corev1.LabelHostname, WhenUnsatisfiable: spread,
		LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{
			labelInstance: m.Name, labelComponent: "segment"}},
		// Nodes the pods may not run on do not count in the skew.
		NodeAffinityPolicy: &honor, NodeTaintsPolicy: &honor,
	}}
	// A segment that failed is not run again: started late, its load would
	// not line up with the others'. Each index fails alone (the others run
	// on), and the merge names the missing one.
	perIndex := int32(0)
	// With one try per index, the Job as a whole fails only once all N did.
	backoff := n
	indexed := batchv1.IndexedCompletion
	return &batchv1.Job{
		TypeMeta:   metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: meta,
		Spec: batchv1.JobSpec{
			CompletionMode: &indexed, Completions: &n, Parallelism: &n,
			BackoffLimitPerIndex: &perIndex, BackoffLimit: &backoff,
			ActiveDeadlineSeconds: &deadline,
			Template:              spec,
		},
	}
}

func mergeJob(m *Manifests, o Options, meta metav1.ObjectMeta) *batchv1.Job {
	dirs := SegmentDirs(m.Segments)
	wait := corev1.Container{
		Name: "wait-segments", Image: o.Image,
		Args:      append([]string{"k8s", "wait", "--until", m.Until.Format(time.RFC3339)}, dirs...),
		Resources: waitResources,
		VolumeMounts: []corev1.VolumeMount{
			resultsMount(m.Name),
		},
		SecurityContext: containerSecurity(),
	}
	merge := corev1.Container{
		Name: "merge", Image: o.Image,
		Args:      append([]string{"merge", MergedDir}, dirs...),
		Env:       []corev1.EnvVar{goMemLimit(m.Sizing.Merge)},
		Resources: m.Sizing.Merge,
		VolumeMounts: []corev1.VolumeMount{
			resultsMount(m.Name),
			{Name: "tmp", MountPath: "/tmp"},
		},
		SecurityContext: containerSecurity(),
	}
	spec := podSpec(meta.Labels, []corev1.Container{merge}, []corev1.Volume{resultsVolume(m.ClaimName), tmpVolume()})
	spec.Spec.InitContainers = []corev1.Container{wait}
	// The merge is the run's verdict: exit 3 when a threshold failed over
	// all segments, 1 on bad input. Running it again would say the same.
	backoff := int32(0)
	return &batchv1.Job{
		TypeMeta:   metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: meta,
		Spec:       batchv1.JobSpec{BackoffLimit: &backoff, Template: spec},
	}
}

func podSpec(l map[string]string, containers []corev1.Container, volumes []corev1.Volume) corev1.PodTemplateSpec {
	user, nonRoot, noLinks, noToken := int64(runAs), true, false, false
	grace := int64(60) // stampede stops on SIGTERM and writes its files, marked partial
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: l},
		Spec: corev1.PodSpec{
			RestartPolicy:      corev1.RestartPolicyNever,
			Containers:         containers,
			Volumes:            volumes,
			EnableServiceLinks: &noLinks,
			// The pods never call the API server: no token mounted in
			// them (the service-account admission adds one otherwise).
			AutomountServiceAccountToken:  &noToken,
			TerminationGracePeriodSeconds: &grace,
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot: &nonRoot, RunAsUser: &user, RunAsGroup: &user,
				// The results volume is written by the nonroot user.
				FSGroup:        &user,
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
		},
	}
}

func containerSecurity() *corev1.SecurityContext {
	no, yes := false, true
	return &corev1.SecurityContext{
		AllowPrivilegeEscalation: &no, ReadOnlyRootFilesystem: &yes,
		Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
}

// goMemLimit sets Go's soft memory limit to 90% of the container's limit,
// so the collector works harder before the kernel kills the pod.
func goMemLimit(r corev1.ResourceRequirements) corev1.EnvVar {
	lim := r.Limits[corev1.ResourceMemory]
	return corev1.EnvVar{Name: "GOMEMLIMIT", Value: strconv.FormatInt(lim.Value()/10*9>>20, 10) + "MiB"}
}

// configVolume is /config: the scenario from the ConfigMap and the users
// file from the Secret, side by side.
func configVolume(m *Manifests) corev1.Volume {
	sources := []corev1.VolumeProjection{{ConfigMap: &corev1.ConfigMapProjection{
		LocalObjectReference: corev1.LocalObjectReference{Name: m.Config.Name},
		Items:                []corev1.KeyToPath{{Key: path.Base(ScenarioFile), Path: path.Base(ScenarioFile)}},
	}}}
	if m.Users != nil {
		sources = append(sources, corev1.VolumeProjection{Secret: &corev1.SecretProjection{
			LocalObjectReference: corev1.LocalObjectReference{Name: m.Users.Name},
			Items:                []corev1.KeyToPath{{Key: path.Base(UsersFile), Path: path.Base(UsersFile)}},
		}})
	}
	return corev1.Volume{Name: "config", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: sources}}}
}

func resultsVolume(claim string) corev1.Volume {
	return corev1.Volume{Name: "results", VolumeSource: corev1.VolumeSource{
		PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}}
}

// resultsMount mounts the run's own directory of the results volume at
// /results, so that runs sharing a claim do not mix.
func resultsMount(name string) corev1.VolumeMount {
	return corev1.VolumeMount{Name: "results", MountPath: ResultsDir, SubPath: name}
}

func tmpVolume() corev1.Volume {
	lim := resource.MustParse("64Mi")
	return corev1.Volume{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: &lim}}}
}

func labels(name, component string) map[string]string {
	return map[string]string{labelName: "stampede", labelInstance: name, labelComponent: component}
}

// defaultName is stampede-STEM-YYYYMMDD-HHMMSS of the start, the stem made
// a DNS label.
func defaultName(scenarioPath string, start time.Time) string {
	stem := strings.TrimSuffix(path.Base(strings.ReplaceAll(scenarioPath, "\\", "/")), path.Ext(scenarioPath))
	var b strings.Builder
	for _, r := range strings.ToLower(stem) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
	}
	s := strings.Trim(b.String(), "-")
	if len(s) > 20 {
		s = strings.TrimRight(s[:20], "-")
	}
	if s == "" {
		s = "run"
	}
	return "stampede-" + s + "-" + start.UTC().Format("20060102-150405")
}

// rewriteUsersFile returns the scenario with its users_file pointing at
// UsersFile when the pods get a users file, the rest byte for byte, and
// the parsed result.
func rewriteUsersFile(f Input) ([]byte, *load.Scenario, error) {
	sc, err := load.ParseScenario(f.ScenarioPath, f.Scenario)
	if err != nil {
		return nil, nil, err
	}
	if f.Users == nil {
		if sc.UsersFile != "" {
			return nil, nil, fmt.Errorf("%s: users_file: %q is not given to the pods (read it, or pass --users-file)", sc.Pos("$.users_file"), sc.UsersFile)
		}
		return f.Scenario, sc, nil
	}
	out, err := setUsersFile(f.Scenario)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: users_file: %w", sc.Pos("$.users_file"), err)
	}
	sc2, err := load.ParseScenario(f.ScenarioPath, out)
	if err != nil || sc2.UsersFile != UsersFile {
		return nil, nil, fmt.Errorf("%s: users_file: cannot point it at %s in this file (write users_file: as a plain key of the top-level mapping)", sc.Pos("$.users_file"), UsersFile)
	}
	return out, sc2, nil
}

// setUsersFile replaces the value of the top-level users_file in the
// scenario's text, keeping every other byte (comments, order, quoting),
// or appends the key when the scenario has none.
func setUsersFile(src []byte) ([]byte, error) {
	file, err := parser.ParseBytes(src, parser.ParseComments)
	if err != nil {
		return nil, err
	}
	p, err := yaml.PathString("$.users_file")
	if err != nil {
		return nil, err
	}
	node, err := p.FilterFile(file)
	if err != nil || node == nil || node.GetToken() == nil {
		out := append([]byte(nil), src...)
		if len(out) > 0 && out[len(out)-1] != '\n' {
			out = append(out, '\n')
		}
		return append(out, "users_file: "+UsersFile+"\n"...), nil
	}
	tk := node.GetToken()
	raw := strings.TrimSpace(tk.Origin)
	if _, ok := node.(*ast.StringNode); !ok || raw == "" || strings.Contains(raw, "\n") {
		return nil, errors.New("a string on one line (no block scalar, anchor or tag) is needed to rewrite it")
	}
	// Position is 1-based line and column (in characters); find the
	// value's bytes on its line.
	lines := bytes.SplitAfter(src, []byte("\n"))
	line := tk.Position.Line - 1
	if line < 0 || line >= len(lines) {
		return nil, errors.New("value not found")
	}
	l := lines[line]
	at := 0
	for i := 1; i < tk.Position.Column && at < len(l); i++ {
		_, w := utf8.DecodeRune(l[at:])
		at += w
	}
	if !bytes.HasPrefix(l[at:], []byte(raw)) {
		return nil, errors.New("value not found on its line")
	}
	offset := 0
	for _, prev := range lines[:line] {
		offset += len(prev)
	}
	offset += at
	out := append([]byte(nil), src[:offset]...)
	out = append(out, UsersFile...)
	return append(out, src[offset+len(raw):]...), nil
}

// warnings are what the scenario asks that a pod cannot give, and what
// goes into the ConfigMap unprotected.
func warnings(sc *load.Scenario, plan *load.Plan, sz Sizing) []string {
	var w []string
	host := plan.Target.Hostname()
	if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
		w = append(w, fmt.Sprintf("target %s is a loopback address: in a pod it is the pod itself", plan.Target))
	}
	if sc.Probes.Pid != 0 {
		w = append(w, fmt.Sprintf("probes.pid %d is a process of the target's host: segment 0's pod cannot see it", sc.Probes.Pid))
	}
	for _, l := range sc.Logs {
		w = append(w, fmt.Sprintf("logs: %s (%s) is read by segment 0's pod: mount it there, or tail it with the target", l.Name, l.Path))
	}
	dsns := []string{sc.Probes.Postgres, sc.Probes.PgBouncer, sc.Probes.Redis}
	dsns = append(dsns, strings.Fields(sc.Probes.Prometheus)...) // one URL or several
	for _, dsn := range dsns {
		if dsn != "" && stampede.Redact(dsn) != dsn {
			w = append(w, fmt.Sprintf("a probe's DSN (%s) holds a password: it goes into the ConfigMap as written", stampede.Redact(dsn)))
		}
	}
	if sz.Assumed != "" {
		w = append(w, "sizing: "+sz.Assumed)
	}
	cpu := sz.Pod.Requests[corev1.ResourceCPU]
	if cpu.MilliValue() > 2000 {
		w = append(w, fmt.Sprintf("sizing: a pod needs %s CPU for an estimated %.0f requests/s: more segments would keep each pod within a core or two", cpu.String(), sz.RatePerPod))
	}
	return w
}
