package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/stampede-load/stampede/internal/k8s"
)

func init() {
	commands["k8s"] = command{summary: "print the Kubernetes manifests that run a scenario in N pods and merge them: stampede k8s SCENARIO --segments N --image IMAGE", run: cmdK8s}
}

// k8sFlags are the flags of "stampede k8s".
type k8sFlags struct {
	o                  k8s.Options
	startAt, usersFile string
}

func (f *k8sFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&f.o.Segments, "segments", 0, "pods that share the load, N ≥ 1 (required)")
	fs.StringVar(&f.o.Image, "image", "", "container image whose entrypoint is stampede, e.g. built from the Dockerfile (required)")
	fs.StringVar(&f.o.Namespace, "namespace", "", "namespace of the objects (default: kubectl's)")
	fs.StringVar(&f.o.ResultsPVC, "results-pvc", "", "an existing ReadWriteMany claim for the results (default: create NAME-results, sized from the estimate)")
	fs.StringVar(&f.startAt, "start-at", "", "the instant every segment starts, RFC 3339 (default: 2 minutes from now)")
	fs.StringVar(&f.usersFile, "users-file", "", "the users file the pods get (default: the scenario's users_file)")
	fs.StringVar(&f.o.Name, "name", "", "prefix of the objects and the run's directory on the results volume (default stampede-SCENARIO-START)")
	fs.StringVar(&f.o.CPU, "cpu", "", "CPU request of a segment's pod, replacing the estimate (limit: twice it)")
	fs.StringVar(&f.o.Memory, "memory", "", "memory request of a segment's pod, replacing the estimate (limit: twice it)")
	fs.BoolVar(&f.o.SoftSpread, "soft-spread", false, "let segments share a node when the spread cannot be kept, instead of leaving a pod pending")
}

func cmdK8s(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "wait" {
		return cmdK8sWait(ctx, args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("k8s", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f k8sFlags
	f.register(fs)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: stampede k8s SCENARIO.yaml --segments N --image IMAGE [flags] | kubectl apply -f -

Prints the manifests that run the scenario in N pods on Kubernetes: a ConfigMap
with the scenario, a Secret with its users file, a ReadWriteMany claim for the
results (unless --results-pvc), an Indexed Job whose pod i runs segment i of N
into /results/seg-i, and a merge Job that waits for them and runs
"stampede merge /results/merged /results/seg-0 ...": its exit status is the
run's (0 ok, 3 a threshold failed, 1 bad input). Each pod's CPU and memory are
sized from the scenario (the formula is in the README, "Running on Kubernetes").

Flags:
`)
		fs.PrintDefaults()
		fmt.Fprint(stderr, `
stampede k8s wait [--until T] DIR...   wait until every run directory has finished
                                       (the merge Job's first container runs it)
`)
	}
	positional, err := parseAnyOrder(fs, args)
	if err != nil {
		return err
	}
	if len(positional) != 1 {
		return withHint(fmt.Errorf("k8s: one scenario file, got %d", len(positional)), "stampede k8s scenario.yaml --segments 4 --image REGISTRY/stampede:TAG | kubectl apply -f -")
	}
	if f.startAt != "" {
		if f.o.StartAt, err = time.Parse(time.RFC3339, f.startAt); err != nil {
			return fmt.Errorf("k8s: --start-at %q: want an RFC 3339 instant such as 2026-11-27T10:45:00Z", f.startAt)
		}
	}
	if err := f.o.Validate(); err != nil {
		return withHint(fmt.Errorf("k8s: %w", err), "stampede help k8s")
	}
	in, err := k8s.Read(positional[0], f.usersFile)
	if err != nil {
		return err
	}
	m, err := k8s.Build(in, f.o)
	if err != nil {
		return fmt.Errorf("k8s: %w", err)
	}
	for _, w := range m.Warnings {
		fmt.Fprintf(stderr, "stampede: warning: %s\n", w)
	}
	if err := m.WriteYAML(stdout); err != nil {
		return err
	}
	printK8sNext(stderr, m, f.o.Namespace)
	return nil
}

// printK8sNext tells, on stderr, how to follow the run once applied.
func printK8sNext(w io.Writer, m *k8s.Manifests, namespace string) {
	kc := "kubectl"
	if namespace != "" {
		kc += " -n " + namespace
	}
	fmt.Fprintf(w, "stampede: the segments start at %s; the merge ends by %s.\n", m.StartAt.Format(time.RFC3339), m.Until.Format(time.RFC3339))
	fmt.Fprintf(w, "  wait:    until %s get job %s-merge -o jsonpath='{.status.succeeded}{.status.failed}' | grep -q 1; do sleep 10; done\n", kc, m.Name)
	fmt.Fprintf(w, "  report:  %s logs job/%s-merge -c merge\n", kc, m.Name)
	fmt.Fprintf(w, "  files:   claim %s, directory %s/merged (README: \"Running on Kubernetes\" copies them out)\n", m.ClaimName, m.Name)
}

func cmdK8sWait(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("k8s wait", flag.ContinueOnError)
	fs.SetOutput(stderr)
	until := fs.String("until", "", "stop waiting at this RFC 3339 instant and leave the unfinished ones to the merge (default: wait on)")
	poll := fs.Duration("poll", 2*time.Second, "how often to look")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: stampede k8s wait [--until T] DIR...\n\nWaits until every run directory's meta.json has its end (the run finished,\nor was interrupted and marked partial), or until T; names those still\nunfinished then. Exit 0 either way, so that the merge runs and names them.\n\nFlags:")
		fs.PrintDefaults()
	}
	dirs, err := parseAnyOrder(fs, args)
	if err != nil {
		return err
	}
	if len(dirs) == 0 {
		return withHint(errors.New("k8s wait: no run directory"), "stampede k8s wait --until 2026-11-27T11:00:00Z /results/seg-0 /results/seg-1")
	}
	deadline := time.Now().Add(100 * 365 * 24 * time.Hour)
	if *until != "" {
		if deadline, err = time.Parse(time.RFC3339, *until); err != nil {
			return fmt.Errorf("k8s wait: --until %q: want an RFC 3339 instant such as 2026-11-27T11:00:00Z", *until)
		}
	}
	_, err = k8s.Wait(ctx, dirs, deadline, *poll, stdout)
	return err
}
