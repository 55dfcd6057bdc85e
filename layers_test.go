package stampede

import (
	"os/exec"
	"strings"
	"testing"
)

// layers ranks the packages of the module, relative to the module path,
// from the vocabulary up to the commands (STYLE.md: imports point down
// only). A package may import packages of its rank or lower; a new package
// gets a rank here.
var layers = []struct {
	rank     int
	packages []string // a trailing "/" stands for every package under it
}{
	{0, []string{""}},
	{1, []string{"internal/session", "internal/logtail", "internal/metrics", "internal/evidence", "internal/probe",
		"internal/probe/", "internal/rundir", "internal/lab", "internal/testserver", "internal/testenv", "internal/secret", "internal/har", "internal/preflight", "internal/evloop"}},
	{2, []string{"internal/diagnose", "internal/load"}},
	{3, []string{"internal/report", "internal/locust", "internal/k8s", "internal/check"}},
	{4, []string{"internal/runner"}},
	{5, []string{"internal/merge", "internal/live", "internal/metricsout"}},
	{6, []string{"cmd/", "internal/testenv/cmd/", "internal/faults", "internal/faults/"}},
}

// alone are packages that import no package of the module but those named:
// the lab, so that the diagnosis must find its faults from the outside,
// and the diagnosis, which sees data only.
var alone = map[string][]string{
	"internal/lab":      {},
	"internal/diagnose": {""},
}

func rankOf(rel string) (int, bool) {
	for _, l := range layers {
		for _, p := range l.packages {
			if rel == p || (strings.HasSuffix(p, "/") && strings.HasPrefix(rel, p)) {
				return l.rank, true
			}
		}
	}
	return 0, false
}

func TestImportsPointDown(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	const module = "github.com/stampede-load/stampede"
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	rel := func(path string) (string, bool) {
		if path == module {
			return "", true
		}
		r, ok := strings.CutPrefix(path, module+"/")
		return r, ok
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg, _ := rel(fields[0])
		rank, ok := rankOf(pkg)
		if !ok {
			t.Errorf("%s has no rank: give it one in layers (layers_test.go)", fields[0])
			continue
		}
		allowed, isAlone := alone[pkg]
		for _, imp := range fields[1:] {
			dep, ours := rel(imp)
			if !ours {
				continue
			}
			if isAlone && !contains(allowed, dep) {
				t.Errorf("%s imports %s: it may import only %q of the module", fields[0], imp, allowed)
			}
			if r, ok := rankOf(dep); ok && r > rank {
				t.Errorf("%s (rank %d) imports %s (rank %d): imports point down only", fields[0], rank, imp, r)
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
