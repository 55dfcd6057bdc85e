package k8s

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// WriteYAML writes the objects as YAML documents separated by "---", after
// a comment that states the run and its sizing, for kubectl apply -f -.
func (m *Manifests) WriteYAML(w io.Writer) error {
	var b strings.Builder
	s := m.Sizing
	res := func(r corev1.ResourceRequirements) string {
		cpu, mem := r.Requests[corev1.ResourceCPU], r.Requests[corev1.ResourceMemory]
		cpuL, memL := r.Limits[corev1.ResourceCPU], r.Limits[corev1.ResourceMemory]
		return fmt.Sprintf("cpu %s (limit %s), memory %s (limit %s)", cpu.String(), cpuL.String(), mem.String(), memL.String())
	}
	fmt.Fprintf(&b, "# stampede k8s: %s, %d segment(s) starting at %s\n", m.Name, m.Segments, m.StartAt.Format(time.RFC3339))
	fmt.Fprintf(&b, "# each segment's pod: up to %d users, an estimated %.0f requests/s at most: %s\n", s.UsersPerPod, s.RatePerPod, res(s.Pod))
	fmt.Fprintf(&b, "# merge: an estimated %.0f requests at most: %s\n", s.Requests, res(s.Merge))
	fmt.Fprintf(&b, "# results: claim %s, directory %s/ (seg-0 ... seg-%d, merged)\n", m.ClaimName, m.Name, m.Segments-1)
	for _, obj := range m.Objects() {
		y, err := marshal(obj)
		if err != nil {
			return err
		}
		b.WriteString("---\n")
		b.Write(y)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// marshal is the object as YAML without its empty status, which only the
// cluster fills.
func marshal(obj any) ([]byte, error) {
	j, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("k8s: %w", err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(j, &fields); err != nil {
		return nil, fmt.Errorf("k8s: %w", err)
	}
	if string(fields["status"]) == "{}" {
		delete(fields, "status")
		if j, err = json.Marshal(fields); err != nil {
			return nil, fmt.Errorf("k8s: %w", err)
		}
	}
	y, err := yaml.JSONToYAML(j)
	if err != nil {
		return nil, fmt.Errorf("k8s: %w", err)
	}
	return y, nil
}
