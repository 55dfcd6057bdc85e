package k8s

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/stampede-load/stampede/internal/metrics"
)

// clusterNamespace enforces the restricted Pod Security Standard, and
// warns and audits at it.
const clusterNamespace = "load"

// clusterCase is one run of "stampede k8s" applied to the cluster.
type clusterCase struct {
	name string
	n    int
	soft bool
	// run executes the pods' commands on this machine and compares the
	// merged run with one generator's.
	run bool
	// scheduled is how many segment pods the scheduler places; perNode
	// checks their counts per node.
	scheduled int
	perNode   func(counts map[string]int) error
}

// spreadWithin is the skew topologySpreadConstraints allow over nodes.
func spreadWithin(nodes []string, skew int) func(map[string]int) error {
	return func(c map[string]int) error {
		lo, hi := -1, 0
		for _, n := range nodes {
			if lo < 0 || c[n] < lo {
				lo = c[n]
			}
			hi = max(hi, c[n])
		}
		if hi-lo > skew {
			return fmt.Errorf("counts %v over %v: skew %d > %d", c, nodes, hi-lo, skew)
		}
		for n := range c {
			if !slices.Contains(nodes, n) {
				return fmt.Errorf("counts %v: a pod on %s, outside %v", c, n, nodes)
			}
		}
		return nil
	}
}

var bigNodes = []string{"node-a", "node-b", "node-c"}

// TestCluster applies what "stampede k8s" prints to a real control plane
// (scripts/k8s-check builds and names it) and runs the pods' commands.
func TestCluster(t *testing.T) {
	bin := clusterBinDir(t)
	checkRunnable(t)
	began := time.Now()
	pl := startPlane(t, bin)
	t.Logf("control plane %s up in %s (etcd, kube-apiserver, kube-controller-manager, kube-scheduler from %s)", pl.version, time.Since(began).Round(time.Millisecond), bin)

	warn := &warnLog{}
	cfg := rest.CopyConfig(pl.cfg)
	cfg.WarningHandler = warn
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()

	for _, n := range bigNodes {
		addNode(t, ctx, cs, n, "4", "8Gi")
	}
	_, err = cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: clusterNamespace, Labels: map[string]string{
		"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest",
		"pod-security.kubernetes.io/warn": "restricted", "pod-security.kubernetes.io/warn-version": "latest",
		"pod-security.kubernetes.io/audit": "restricted", "pod-security.kubernetes.io/audit-version": "latest",
	}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the namespace's default service account", func() (bool, error) {
		_, err := cs.CoreV1().ServiceAccounts(clusterNamespace).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	if w := warn.take(); len(w) > 0 {
		t.Logf("warnings while setting up: %q", w)
	}

	work := t.TempDir()
	if err := os.Chmod(work, 0o755); err != nil {
		t.Fatal(err)
	}
	stampedeBin := buildStatic(t, work)
	labAddr := startLab(t, stampedeBin, work)
	users, err := exec.Command(stampedeBin, "lab", "users", "--count", "40").Output()
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(filepath.Join("testdata", "cluster", "scenario.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	scenarioPath := filepath.Join(work, "cluster.yaml")
	writeFile(t, scenarioPath, bytes.ReplaceAll(src, []byte("LAB_ADDR"), []byte(labAddr)), 0o644)
	writeFile(t, filepath.Join(work, "users.csv"), users, 0o644)
	in, err := Read(scenarioPath, "")
	if err != nil {
		t.Fatal(err)
	}

	kl := &kubelet{bin: stampedeBin, dir: work, claimDirs: map[string]string{},
		configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{}}

	cases := []clusterCase{
		{name: "n1", n: 1, run: true, scheduled: 1, perNode: spreadWithin(bigNodes, 1)},
		{name: "n3", n: 3, run: true, scheduled: 3, perNode: func(c map[string]int) error {
			for _, n := range bigNodes {
				if c[n] != 1 {
					return fmt.Errorf("counts %v: want one segment on each of %v", c, bigNodes)
				}
			}
			return nil
		}},
		// 16 segments over 3 nodes: maxSkew 1 lets each node take 5 or 6;
		// DoNotSchedule leaves none pending while every node has room.
		{name: "n16", n: 16, run: true, scheduled: 16, perNode: spreadWithin(bigNodes, 1)},
	}
	var runs []runResult
	for _, c := range cases {
		if !t.Run(c.name, func(t *testing.T) {
			r := applyCase(t, ctx, cs, dyn, warn, kl, in, c)
			if c.run {
				runs = append(runs, runCase(t, ctx, cs, kl, r))
			}
		}) {
			t.FailNow()
		}
	}

	// A node that counts in the spread but fits no segment (0.1 CPU):
	// with DoNotSchedule, once each big node has one segment, a second on
	// any of them would make the skew 2 against it, so the rest stay
	// Pending; with --soft-spread they share the big nodes.
	addNode(t, ctx, cs, "node-small", "100m", "8Gi")
	t.Run("n16-full-node-hard", func(t *testing.T) {
		r := applyCase(t, ctx, cs, dyn, warn, kl, in, clusterCase{name: "n16-full-node-hard", n: 16, scheduled: 3, perNode: func(c map[string]int) error {
			for _, n := range bigNodes {
				if c[n] != 1 {
					return fmt.Errorf("counts %v: want one segment on each of %v, the rest pending", c, bigNodes)
				}
			}
			return nil
		}})
		checkPending(t, r, 13)
		checkBackoffPerIndex(t, ctx, cs, r)
		deleteCase(t, ctx, cs, r)
	})
	t.Run("n16-full-node-soft", func(t *testing.T) {
		// ScheduleAnyway only scores the skew: every segment is placed,
		// all on the big nodes, each of them used.
		r := applyCase(t, ctx, cs, dyn, warn, kl, in, clusterCase{name: "n16-full-node-soft", n: 16, soft: true, scheduled: 16, perNode: func(c map[string]int) error {
			for _, n := range bigNodes {
				if c[n] == 0 {
					return fmt.Errorf("counts %v: no segment on %s", c, n)
				}
			}
			if c["node-small"] != 0 {
				return fmt.Errorf("counts %v: a segment on the node it does not fit", c)
			}
			return nil
		}})
		deleteCase(t, ctx, cs, r)
	})

	// The merged runs against the same load run by one generator: the
	// same container, without the segment's environment, twice (the
	// load's own variance).
	if len(runs) == 0 || t.Failed() {
		return
	}
	t.Run("one-generator", func(t *testing.T) {
		var base []runSummary
		for i := range 2 {
			base = append(base, runSingle(t, ctx, kl, runs[0], "single-"+strconv.Itoa(i)))
		}
		for i, b := range base {
			t.Logf("one generator, run %d: exit %d, %d requests, %d dropped, %d failures", i, b.exit, b.requests, b.dropped, b.failures)
		}
		spread := abs(base[0].requests - base[1].requests)
		for _, r := range runs {
			m := r.merged
			t.Logf("%s: %d segments merged: exit %d, %d requests, %d dropped, %d failures; segments exited %v", r.name, r.n, m.exit, m.requests, m.dropped, m.failures, r.segExits)
			// Each segment's arrivals are the whole load's k mod N: the
			// sum is the whole load's, give or take one arrival at the
			// end of each segment's window.
			tol := max(2*spread, int64(r.n), base[0].requests/50)
			if d := abs(m.requests - base[0].requests); d > tol {
				t.Errorf("%s: merged %d requests, one generator %d: off by %d, more than %d", r.name, m.requests, base[0].requests, d, tol)
			}
			if m.exit != base[0].exit {
				t.Errorf("%s: the merge exited %d, one generator %d: not the same verdict", r.name, m.exit, base[0].exit)
			}
		}
		if base[0].exit != 3 {
			t.Errorf("one generator exited %d, want 3 (requests < 150 fails over the whole load)", base[0].exit)
		}
	})
}

// caseResult is a case applied: its manifests and what the cluster made.
type caseResult struct {
	c        clusterCase
	m        *Manifests
	segments []*corev1.Pod // by index
	pending  []*corev1.Pod
	merge    *corev1.Pod
}

var (
	gvrConfigMap = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	gvrSecret    = schema.GroupVersionResource{Version: "v1", Resource: "secrets"}
	gvrPVC       = schema.GroupVersionResource{Version: "v1", Resource: "persistentvolumeclaims"}
	gvrJob       = schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "jobs"}
)

func gvrOf(kind string) (schema.GroupVersionResource, bool) {
	switch kind {
	case "ConfigMap":
		return gvrConfigMap, true
	case "Secret":
		return gvrSecret, true
	case "PersistentVolumeClaim":
		return gvrPVC, true
	case "Job":
		return gvrJob, true
	}
	return schema.GroupVersionResource{}, false
}

// applyCase prints the case's manifests, applies each document with
// server-side apply, dry-run then for real, checks that the server kept
// what stampede set and that the controller and the scheduler made and
// placed the pods.
func applyCase(t *testing.T, ctx context.Context, cs kubernetes.Interface, dyn dynamic.Interface, warn *warnLog, kl *kubelet, in Input, c clusterCase) *caseResult {
	t.Helper()
	lead := 10 * time.Minute // never reached: the pods are not run
	if c.run {
		lead = 25 * time.Second // time to apply, schedule and start the containers
	}
	o := Options{Segments: c.n, Image: "registry.invalid/stampede:cluster-check", Name: "chk-" + c.name, Namespace: clusterNamespace,
		StartAt: time.Now().Add(lead).Truncate(time.Second), SoftSpread: c.soft}
	m, err := Build(in, o)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := m.WriteYAML(&out); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(kl.dir, "manifests", c.name+".yaml"), out.Bytes(), 0o644)

	// A volume for the claim, bound to it ahead (no provisioner runs).
	pv := &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "pv-" + m.Name}, Spec: corev1.PersistentVolumeSpec{
		Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("100Gi")},
		AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany},
		PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
		PersistentVolumeSource:        corev1.PersistentVolumeSource{NFS: &corev1.NFSVolumeSource{Server: "127.0.0.1", Path: "/results"}},
		ClaimRef:                      &corev1.ObjectReference{Namespace: clusterNamespace, Name: m.ClaimName},
	}}
	if _, err := cs.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	warn.take()

	docs := documents(t, out.Bytes())
	var kinds []string
	for _, dryRun := range []bool{true, false} {
		for i, doc := range docs {
			j, err := yaml.YAMLToJSON(doc)
			if err != nil {
				t.Fatal(err)
			}
			u := &unstructured.Unstructured{}
			if err := u.UnmarshalJSON(j); err != nil {
				t.Fatal(err)
			}
			gvr, ok := gvrOf(u.GetKind())
			if !ok {
				t.Fatalf("document %d: kind %s not expected", i, u.GetKind())
			}
			opts := metav1.PatchOptions{FieldManager: "stampede-k8s", FieldValidation: "Strict"}
			if dryRun {
				opts.DryRun = []string{metav1.DryRunAll}
			} else {
				kinds = append(kinds, u.GetKind()+" "+u.GetName())
			}
			_, err = dyn.Resource(gvr).Namespace(clusterNamespace).Patch(ctx, u.GetName(), types.ApplyPatchType, j, opts)
			what := "apply"
			if dryRun {
				what = "apply --dry-run=server"
			}
			if err != nil {
				t.Fatalf("%s of %s %s refused: %v\n%s", what, u.GetKind(), u.GetName(), err, doc)
			}
			if w := warn.take(); len(w) > 0 {
				t.Errorf("%s of %s %s: the API server warned: %q", what, u.GetKind(), u.GetName(), w)
			}
			if dryRun {
				if _, err := dyn.Resource(gvr).Namespace(clusterNamespace).Get(ctx, u.GetName(), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
					t.Errorf("after a dry run, %s %s: %v, want not found", u.GetKind(), u.GetName(), err)
				}
			}
		}
	}
	t.Logf("applied (dry-run, then for real, strict field validation, no warning): %s", strings.Join(kinds, ", "))

	r := &caseResult{c: c, m: m}
	checkJobs(t, ctx, cs, m)

	// The claim binds to its volume: no pod of it is placed before.
	waitFor(t, ctx, "claim "+m.ClaimName+" bound", func() (bool, error) {
		pvc, err := cs.CoreV1().PersistentVolumeClaims(clusterNamespace).Get(ctx, m.ClaimName, metav1.GetOptions{})
		return err == nil && pvc.Status.Phase == corev1.ClaimBound, err
	})

	// The Job controller makes N pods and the merge Job one; the
	// scheduler places each or says why not.
	sel := func(component string) string {
		return labelInstance + "=" + m.Name + "," + labelComponent + "=" + component
	}
	var segs, merges []corev1.Pod
	waitFor(t, ctx, fmt.Sprintf("%d segment pods and a merge pod, each placed or found unschedulable", c.n), func() (bool, error) {
		l, err := cs.CoreV1().Pods(clusterNamespace).List(ctx, metav1.ListOptions{LabelSelector: sel("segment")})
		if err != nil {
			return false, err
		}
		ml, err := cs.CoreV1().Pods(clusterNamespace).List(ctx, metav1.ListOptions{LabelSelector: sel("merge")})
		if err != nil {
			return false, err
		}
		segs, merges = l.Items, ml.Items
		if len(segs) != c.n || len(merges) != 1 {
			return false, nil
		}
		for _, p := range append(append([]corev1.Pod(nil), segs...), merges...) {
			if p.Spec.NodeName != "" {
				continue
			}
			cond := podCondition(&p, corev1.PodScheduled)
			if cond == nil || cond.Reason != corev1.PodReasonUnschedulable {
				return false, nil
			}
			// A pod tried before its claim bound (the claim is bound by now,
			// waited for above) is tried again: v1.29's scheduler says so
			// until then.
			if strings.Contains(cond.Message, "unbound immediate PersistentVolumeClaims") {
				return false, nil
			}
		}
		return true, nil
	})
	if merges[0].Spec.NodeName == "" {
		t.Errorf("the merge pod was not placed: %+v", podCondition(&merges[0], corev1.PodScheduled))
	}
	r.merge = &merges[0]
	r.segments = make([]*corev1.Pod, c.n)
	counts := map[string]int{}
	for i := range segs {
		p := &segs[i]
		idx, err := strconv.Atoi(p.Annotations[batchv1.JobCompletionIndexAnnotation])
		if err != nil || idx < 0 || idx >= c.n || r.segments[idx] != nil {
			t.Fatalf("pod %s: completion index %q: want each of 0..%d once", p.Name, p.Annotations[batchv1.JobCompletionIndexAnnotation], c.n-1)
		}
		r.segments[idx] = p
		checkSegmentPod(t, m, p, idx)
		if p.Spec.NodeName != "" {
			counts[p.Spec.NodeName]++
		} else {
			r.pending = append(r.pending, p)
		}
	}
	if got := c.n - len(r.pending); got != c.scheduled {
		t.Errorf("%d of %d segment pods placed, want %d (per node %v)", got, c.n, c.scheduled, counts)
	}
	if err := c.perNode(counts); err != nil {
		t.Error(err)
	}
	t.Logf("segments per node: %v, %d pending; merge pod on %s", counts, len(r.pending), r.merge.Spec.NodeName)
	return r
}

func podCondition(p *corev1.Pod, ct corev1.PodConditionType) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == ct {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

// checkJobs reads the Jobs back: what the README says of them survived
// validation and defaulting.
func checkJobs(t *testing.T, ctx context.Context, cs kubernetes.Interface, m *Manifests) {
	t.Helper()
	job, err := cs.BatchV1().Jobs(clusterNamespace).Get(ctx, m.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s := job.Spec
	n := int32(m.Segments)
	i32 := func(p *int32) string {
		if p == nil {
			return "unset"
		}
		return strconv.Itoa(int(*p))
	}
	if s.CompletionMode == nil || *s.CompletionMode != batchv1.IndexedCompletion || i32(s.Completions) != i32(&n) || i32(s.Parallelism) != i32(&n) {
		t.Errorf("job %s: completionMode %v, completions %s, parallelism %s: want Indexed, %d, %d", job.Name, s.CompletionMode, i32(s.Completions), i32(s.Parallelism), n, n)
	}
	if i32(s.BackoffLimitPerIndex) != "0" || i32(s.BackoffLimit) != i32(&n) {
		t.Errorf("job %s: backoffLimitPerIndex %s, backoffLimit %s: want 0 and %d", job.Name, i32(s.BackoffLimitPerIndex), i32(s.BackoffLimit), n)
	}
	// Without a podFailurePolicy the server defaults podReplacementPolicy
	// to TerminatingOrFailed (pkg/apis/batch/v1/defaults.go); an index that
	// failed is not replaced either way (backoffLimitPerIndex 0, checked
	// by checkBackoffPerIndex).
	if s.PodReplacementPolicy == nil || *s.PodReplacementPolicy != batchv1.TerminatingOrFailed {
		t.Errorf("job %s: podReplacementPolicy %v, want the default TerminatingOrFailed", job.Name, s.PodReplacementPolicy)
	}
	// activeDeadlineSeconds: the time to the start, the run, 15 minutes.
	want := m.StartAt.Sub(job.CreationTimestamp.Time) + m.Until.Sub(m.StartAt) - 10*time.Minute + 15*time.Minute
	if s.ActiveDeadlineSeconds == nil || abs(*s.ActiveDeadlineSeconds-int64(want.Seconds())) > 3 {
		t.Errorf("job %s: activeDeadlineSeconds %v, want about %.0f (start %s − created %s + run + 15m)", job.Name, s.ActiveDeadlineSeconds, want.Seconds(),
			m.StartAt.Format(time.RFC3339), job.CreationTimestamp.UTC().Format(time.RFC3339))
	}
	tsc := s.Template.Spec.TopologySpreadConstraints
	wantWhen := corev1.DoNotSchedule
	if m.Load.Spec.Template.Spec.TopologySpreadConstraints[0].WhenUnsatisfiable == corev1.ScheduleAnyway {
		wantWhen = corev1.ScheduleAnyway
	}
	if len(tsc) != 1 || tsc[0].MaxSkew != 1 || tsc[0].TopologyKey != corev1.LabelHostname || tsc[0].WhenUnsatisfiable != wantWhen ||
		tsc[0].NodeAffinityPolicy == nil || *tsc[0].NodeAffinityPolicy != corev1.NodeInclusionPolicyHonor ||
		tsc[0].NodeTaintsPolicy == nil || *tsc[0].NodeTaintsPolicy != corev1.NodeInclusionPolicyHonor {
		t.Errorf("job %s: topologySpreadConstraints as stored %+v: want maxSkew 1 over %s, %s, both policies Honor", job.Name, tsc, corev1.LabelHostname, wantWhen)
	}

	merge, err := cs.BatchV1().Jobs(clusterNamespace).Get(ctx, m.Name+"-merge", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if i32(merge.Spec.BackoffLimit) != "0" {
		t.Errorf("job %s: backoffLimit %s, want 0 (the merge's exit status is the verdict)", merge.Name, i32(merge.Spec.BackoffLimit))
	}
	ic := merge.Spec.Template.Spec.InitContainers
	until := m.StartAt.Add(6*time.Second + 10*time.Minute).Format(time.RFC3339)
	wantArgs := append([]string{"k8s", "wait", "--until", until}, SegmentDirs(m.Segments)...)
	if len(ic) != 1 || !slices.Equal(ic[0].Args, wantArgs) {
		t.Errorf("job %s: init containers %+v: want one running %q (the start, the 6 s run, 10 minutes)", merge.Name, ic, wantArgs)
	}
}

// checkSegmentPod checks a pod the Job controller made: index, hostname,
// environment and volumes.
func checkSegmentPod(t *testing.T, m *Manifests, p *corev1.Pod, idx int) {
	t.Helper()
	if got := p.Labels[batchv1.JobCompletionIndexAnnotation]; got != strconv.Itoa(idx) {
		t.Errorf("pod %s: label %s=%q, want %d", p.Name, batchv1.JobCompletionIndexAnnotation, got, idx)
	}
	if want := m.Name + "-" + strconv.Itoa(idx); p.Spec.Hostname != want {
		t.Errorf("pod %s: hostname %q, want %q", p.Name, p.Spec.Hostname, want)
	}
	if len(p.Spec.Containers) != 1 {
		t.Fatalf("pod %s: %d containers", p.Name, len(p.Spec.Containers))
	}
	c := p.Spec.Containers[0]
	var idxVars []corev1.EnvVar
	for _, e := range c.Env {
		if e.Name == EnvIndex {
			idxVars = append(idxVars, e)
		}
	}
	wantRef := "metadata.annotations['" + batchv1.JobCompletionIndexAnnotation + "']"
	if len(idxVars) != 1 || idxVars[0].ValueFrom == nil || idxVars[0].ValueFrom.FieldRef == nil || idxVars[0].ValueFrom.FieldRef.FieldPath != wantRef {
		t.Errorf("pod %s: %s as %+v: want it once, from %s", p.Name, EnvIndex, idxVars, wantRef)
	}
	for name, want := range map[string]string{EnvSegments: strconv.Itoa(m.Segments), EnvStartAt: m.StartAt.Format(time.RFC3339)} {
		if e, ok := env(c, name); !ok || e.Value != want {
			t.Errorf("pod %s: %s=%q, want %q", p.Name, name, e.Value, want)
		}
	}
	if e, ok := env(c, "GOMEMLIMIT"); !ok || !strings.HasSuffix(e.Value, "MiB") {
		t.Errorf("pod %s: GOMEMLIMIT %q", p.Name, e.Value)
	}
	if !slices.Equal(c.Args, SegmentArgs()) {
		t.Errorf("pod %s: args %q, want %q", p.Name, c.Args, SegmentArgs())
	}
	for path, vol := range map[string]string{ConfigDir: "config", ResultsDir: "results", "/tmp": "tmp"} {
		vm, ok := mount(c, path)
		if !ok || vm.Name != vol {
			t.Errorf("pod %s: no mount of %s at %s", p.Name, vol, path)
		}
	}
	v, _ := podVolume(p, "results")
	if v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != m.ClaimName {
		t.Errorf("pod %s: results volume %+v, want claim %s", p.Name, v, m.ClaimName)
	}
	v, _ = podVolume(p, "config")
	if v.Projected == nil || len(v.Projected.Sources) != 2 || v.Projected.Sources[0].ConfigMap == nil || v.Projected.Sources[1].Secret == nil {
		t.Errorf("pod %s: config volume %+v, want the ConfigMap and the Secret projected", p.Name, v)
	}
}

// checkPending: the pods left are Pending, unschedulable for the spread.
func checkPending(t *testing.T, r *caseResult, want int) {
	t.Helper()
	if len(r.pending) != want {
		t.Errorf("%d pods pending, want %d", len(r.pending), want)
	}
	for _, p := range r.pending {
		cond := podCondition(p, corev1.PodScheduled)
		if p.Status.Phase != corev1.PodPending || cond == nil || cond.Status != corev1.ConditionFalse || !strings.Contains(cond.Message, "topology spread") {
			t.Errorf("pod %s: phase %s, condition %+v: want Pending, unschedulable for the topology spread", p.Name, p.Status.Phase, cond)
		}
	}
	if len(r.pending) > 0 {
		t.Logf("a pending pod's condition: %s", podCondition(r.pending[0], corev1.PodScheduled).Message)
	}
}

// checkBackoffPerIndex fails one placed segment's pod (as its kubelet
// would report a container that exited 1) and checks that the Job
// controller does not run that index again, runs the others on, and does
// not fail the Job.
func checkBackoffPerIndex(t *testing.T, ctx context.Context, cs kubernetes.Interface, r *caseResult) {
	t.Helper()
	var victim *corev1.Pod
	for _, p := range r.segments {
		if p.Spec.NodeName != "" {
			victim = p
			break
		}
	}
	if victim == nil {
		t.Fatal("no placed segment to fail")
	}
	idx := victim.Annotations[batchv1.JobCompletionIndexAnnotation]
	setTerminated(t, ctx, cs, victim, nil, 1)
	var job *batchv1.Job
	waitFor(t, ctx, "index "+idx+" in the Job's failedIndexes", func() (bool, error) {
		var err error
		job, err = cs.BatchV1().Jobs(clusterNamespace).Get(ctx, r.m.Name, metav1.GetOptions{})
		return err == nil && job.Status.FailedIndexes != nil && *job.Status.FailedIndexes == idx, err
	})
	// Give the controller time to (wrongly) replace it.
	time.Sleep(5 * time.Second)
	l, err := cs.CoreV1().Pods(clusterNamespace).List(ctx, metav1.ListOptions{LabelSelector: labelInstance + "=" + r.m.Name + "," + labelComponent + "=segment"})
	if err != nil {
		t.Fatal(err)
	}
	same := 0
	for _, p := range l.Items {
		if p.Annotations[batchv1.JobCompletionIndexAnnotation] == idx {
			same++
		}
	}
	job, err = cs.BatchV1().Jobs(clusterNamespace).Get(ctx, r.m.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if same != 1 || len(l.Items) != r.c.n {
		t.Errorf("after index %s failed: %d pods of it, %d pods in all: want it not run again, the %d others on", idx, same, len(l.Items), r.c.n-1)
	}
	for _, cond := range job.Status.Conditions {
		if cond.Type == batchv1.JobFailed && cond.Status == corev1.ConditionTrue {
			t.Errorf("the Job failed when one index of %d did: %s", r.c.n, cond.Message)
		}
	}
	t.Logf("index %s failed: failedIndexes %q, %d pods of it, the Job's %d others run on (active %d)", idx, *job.Status.FailedIndexes, same, r.c.n-1, job.Status.Active)
}

// setTerminated reports the pod's containers terminated with code, as
// the kubelet would: the phase Succeeded for 0, Failed otherwise.
func setTerminated(t *testing.T, ctx context.Context, cs kubernetes.Interface, p *corev1.Pod, initCodes []int, code int) {
	t.Helper()
	for try := 0; ; try++ {
		err := reportTerminated(ctx, cs, p, initCodes, code)
		if err == nil {
			return
		}
		// The Job controller may have updated the pod since (finalizer).
		if !apierrors.IsConflict(err) || try == 5 {
			t.Fatalf("pod %s: status: %v", p.Name, err)
		}
	}
}

func reportTerminated(ctx context.Context, cs kubernetes.Interface, p *corev1.Pod, initCodes []int, code int) error {
	cur, err := cs.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	now := metav1.Now()
	term := func(name string, code int) corev1.ContainerStatus {
		reason := "Completed"
		if code != 0 {
			reason = "Error"
		}
		return corev1.ContainerStatus{Name: name, Image: cur.Spec.Containers[0].Image, ImageID: "check://" + name,
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: int32(code), Reason: reason, StartedAt: now, FinishedAt: now}}}
	}
	cur.Status.Phase = corev1.PodSucceeded
	if code != 0 {
		cur.Status.Phase = corev1.PodFailed
	}
	cur.Status.StartTime = &now
	cur.Status.ContainerStatuses = []corev1.ContainerStatus{term(cur.Spec.Containers[0].Name, code)}
	cur.Status.InitContainerStatuses = nil
	for i, c := range cur.Spec.InitContainers {
		cur.Status.InitContainerStatuses = append(cur.Status.InitContainerStatuses, term(c.Name, initCodes[i]))
	}
	_, err = cs.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, cur, metav1.UpdateOptions{})
	return err
}

// deleteCase removes a case's Jobs and pods (no kubelet confirms a
// graceful deletion: the pods go at once).
func deleteCase(t *testing.T, ctx context.Context, cs kubernetes.Interface, r *caseResult) {
	t.Helper()
	bg := metav1.DeletePropagationBackground
	for _, name := range []string{r.m.Name, r.m.Name + "-merge"} {
		if err := cs.BatchV1().Jobs(clusterNamespace).Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &bg}); err != nil {
			t.Error(err)
		}
	}
	zero := int64(0)
	if err := cs.CoreV1().Pods(clusterNamespace).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero},
		metav1.ListOptions{LabelSelector: labelInstance + "=" + r.m.Name}); err != nil {
		t.Error(err)
	}
	waitFor(t, ctx, "the pods of "+r.m.Name+" gone", func() (bool, error) {
		l, err := cs.CoreV1().Pods(clusterNamespace).List(ctx, metav1.ListOptions{LabelSelector: labelInstance + "=" + r.m.Name})
		return err == nil && len(l.Items) == 0, err
	})
}

// runSummary is what a run directory says, and its command's exit status.
type runSummary struct {
	exit                        int
	requests, dropped, failures int64
	output                      string
}

func readRun(t *testing.T, dir string, exit int, out string) runSummary {
	t.Helper()
	s, err := metrics.ReadSummary(filepath.Join(dir, "summary.json"))
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return runSummary{exit: exit, requests: s.Aggregated.Requests, dropped: s.Dropped, failures: s.Aggregated.Failures, output: out}
}

type runResult struct {
	pod0     *corev1.Pod // segment 0's pod, as the API server has it
	name     string
	n        int
	segExits []int
	merged   runSummary
}

// runCase runs the case's pods as the kubelets of their nodes would: the
// ConfigMap and the Secret as the API server has them, one directory for
// the claim; every segment and the merge pod's init container at once,
// the merge container after its init container. Then it reports the exit
// statuses to the API server and checks the Jobs' outcome.
func runCase(t *testing.T, ctx context.Context, cs kubernetes.Interface, kl *kubelet, r *caseResult) runResult {
	t.Helper()
	m := r.m
	cm, err := cs.CoreV1().ConfigMaps(clusterNamespace).Get(ctx, m.Config.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kl.configMaps[cm.Name] = cm
	sec, err := cs.CoreV1().Secrets(clusterNamespace).Get(ctx, m.Users.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kl.secrets[sec.Name] = sec
	// The service account admission's kube-api-access volume projects it.
	ca, err := cs.CoreV1().ConfigMaps(clusterNamespace).Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kl.configMaps[ca.Name] = ca
	claimDir := filepath.Join(kl.dir, "claims", m.ClaimName)
	if err := os.MkdirAll(claimDir, 0o755); err != nil {
		t.Fatal(err)
	}
	kl.claimDirs[m.ClaimName] = claimDir

	var segRuns []*containerRun
	for i, p := range r.segments {
		cr, err := kl.prepare(p, p.Spec.Containers[0])
		if err != nil {
			t.Fatalf("pod %s: %v", p.Name, err)
		}
		if got := cr.env[EnvIndex]; got != strconv.Itoa(i) {
			t.Errorf("pod %s: %s resolves to %q, want %d", p.Name, EnvIndex, got, i)
		}
		if want := ResultsDir + "/seg-" + strconv.Itoa(i); !slices.Contains(cr.argv, want) {
			t.Errorf("pod %s: command %q lacks %s", p.Name, cr.argv, want)
		}
		segRuns = append(segRuns, cr)
	}
	mp := r.merge
	waitRun, err := kl.prepare(mp, mp.Spec.InitContainers[0])
	if err != nil {
		t.Fatal(err)
	}
	mergeRun, err := kl.prepare(mp, mp.Spec.Containers[0])
	if err != nil {
		t.Fatal(err)
	}
	if time.Until(m.StartAt) < 2*time.Second {
		t.Fatalf("the start %s is %s away: the check took too long to reach it", m.StartAt.Format(time.RFC3339), time.Until(m.StartAt))
	}
	rctx, cancel := context.WithTimeout(ctx, time.Until(m.StartAt)+2*time.Minute)
	defer cancel()
	exits := make([]int, len(segRuns))
	outs := make([]string, len(segRuns))
	var wg sync.WaitGroup
	for i, cr := range segRuns {
		wg.Go(func() {
			var err error
			exits[i], outs[i], err = cr.run(rctx)
			if err != nil {
				exits[i] = -1
				outs[i] += "\n" + err.Error()
			}
		})
	}
	var waitExit, mergeExit int
	var waitOut, mergeOut string
	var waitEnd time.Time
	wg.Go(func() {
		var err error
		waitExit, waitOut, err = waitRun.run(rctx)
		waitEnd = time.Now()
		if err != nil || waitExit != 0 {
			waitOut += fmt.Sprint(err)
			return
		}
		mergeExit, mergeOut, err = mergeRun.run(rctx)
		if err != nil {
			mergeExit = -1
			mergeOut += "\n" + err.Error()
		}
	})
	wg.Wait()
	for i, e := range exits {
		if e != 0 {
			t.Errorf("segment %d exited %d (a segment exits 0: thresholds are the merge's):\n%s", i, e, outs[i])
		}
		if want := fmt.Sprintf("Segment %d/%d ($JOB_COMPLETION_INDEX/$STAMPEDE_SEGMENTS)", i, m.Segments); !strings.Contains(outs[i], want) {
			t.Errorf("segment %d's output lacks %q:\n%s", i, want, outs[i])
		}
	}
	if waitExit != 0 {
		t.Fatalf("the merge pod's wait exited %d:\n%s", waitExit, waitOut)
	}
	// The wait began with the segments and ended with the last of them.
	if runEnd := m.StartAt.Add(6 * time.Second); waitEnd.Before(runEnd) {
		t.Errorf("the wait returned at %s, before the 6 s run could end (%s):\n%s", waitEnd.Format(time.RFC3339Nano), runEnd.Format(time.RFC3339), waitOut)
	}
	if strings.Count(waitOut, "finished at") != m.Segments {
		t.Errorf("the wait saw %d of %d segments finish:\n%s", strings.Count(waitOut, "finished at"), m.Segments, waitOut)
	}
	merged := readRun(t, filepath.Join(claimDir, m.Name, "merged"), mergeExit, mergeOut)
	for _, want := range []string{fmt.Sprintf("Merged %d of %d segments", m.Segments, m.Segments), "1 threshold(s) failed"} {
		if !strings.Contains(mergeOut, want) {
			t.Errorf("the merge's output lacks %q:\n%s", want, mergeOut)
		}
	}
	// One evaluation of each threshold, over every segment's requests.
	if n := strings.Count(mergeOut, "all: requests < 150: "); n != 1 || !strings.Contains(mergeOut, "Thresholds (over every segment):") ||
		!strings.Contains(mergeOut, fmt.Sprintf("all: requests < 150: %d FAIL", merged.requests)) {
		t.Errorf("the merge's output evaluates requests < 150 %d times, want once, over the %d requests of every segment:\n%s", n, merged.requests, mergeOut)
	}
	writeFile(t, filepath.Join(kl.dir, "outputs", r.c.name+"-merge.txt"), []byte(waitOut+"\n"+mergeOut), 0o644)

	// What the kubelets would report, and the Jobs' outcome.
	for i, p := range r.segments {
		setTerminated(t, ctx, cs, p, nil, exits[i])
	}
	setTerminated(t, ctx, cs, mp, []int{waitExit}, mergeExit)
	wantMerge := batchv1.JobComplete
	if mergeExit != 0 {
		wantMerge = batchv1.JobFailed
	}
	for name, want := range map[string]batchv1.JobConditionType{m.Name: batchv1.JobComplete, m.Name + "-merge": wantMerge} {
		waitFor(t, ctx, "job "+name+" "+string(want), func() (bool, error) {
			j, err := cs.BatchV1().Jobs(clusterNamespace).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			for _, c := range j.Status.Conditions {
				if c.Status == corev1.ConditionTrue && (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) {
					if c.Type != want {
						return false, fmt.Errorf("job %s: %s (%s), want %s", name, c.Type, c.Message, want)
					}
					return true, nil
				}
			}
			return false, nil
		})
	}
	t.Logf("ran %d segments and the merge: segments exited %v, wait ended %s after the start, merge exit %d, %d requests merged; job %s Complete, job %s-merge %s",
		m.Segments, exits, waitEnd.Sub(m.StartAt).Round(100*time.Millisecond), mergeExit, merged.requests, m.Name, m.Name, wantMerge)
	return runResult{pod0: r.segments[0], name: r.c.name, n: m.Segments, segExits: exits, merged: merged}
}

// runSingle runs the same load with one generator: the container of the
// first case's segment 0 without the segment's environment, into its own
// directory of the claim.
func runSingle(t *testing.T, ctx context.Context, kl *kubelet, first runResult, out string) runSummary {
	t.Helper()
	p := first.pod0.DeepCopy()
	p.Name += "-" + out
	c := &p.Spec.Containers[0]
	var env []corev1.EnvVar
	for _, e := range c.Env {
		if e.Name != EnvIndex && e.Name != EnvSegments && e.Name != EnvStartAt {
			env = append(env, e)
		}
	}
	c.Env = env
	c.Args = []string{"run", ScenarioFile, "--quiet", "--no-diagnose", "--out", ResultsDir + "/" + out}
	cr, err := kl.prepare(p, *c)
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	code, o, err := cr.run(rctx)
	if err != nil {
		t.Fatalf("%v\n%s", err, o)
	}
	var claim string
	for _, v := range p.Spec.Volumes {
		if v.PersistentVolumeClaim != nil {
			claim = v.PersistentVolumeClaim.ClaimName
		}
	}
	sub, _ := mount(*c, ResultsDir)
	return readRun(t, filepath.Join(kl.claimDirs[claim], sub.SubPath, out), code, o)
}

// waitFor polls cond every 200 ms until it holds, fails or ctx ends.
func waitFor(t *testing.T, ctx context.Context, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	var last error
	for {
		ok, err := cond()
		if ok {
			return
		}
		if err != nil {
			last = err
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("waiting for %s: %v", what, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// buildStatic builds cmd/stampede as the Dockerfile does: static.
func buildStatic(t *testing.T, dir string) string {
	t.Helper()
	out := filepath.Join(dir, "stampede")
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, "./cmd/stampede")
	cmd.Dir = filepath.Join("..", "..")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	return out
}

// startLab runs "stampede lab" (healthy) on a free loopback port.
func startLab(t *testing.T, bin, dir string) string {
	t.Helper()
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	p := startProc(t, dir, filepath.Dir(bin), filepath.Base(bin), "lab", "--addr", addr, "--preset", "healthy", "--log-dir", filepath.Join(dir, "lab-logs"))
	waitFor(t, context.Background(), "the lab on "+addr, func() (bool, error) {
		if p.exited() {
			return false, fmt.Errorf("the lab exited:\n%s", p.tail())
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false, nil
		}
		c.Close()
		return true, nil
	})
	return addr
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}
