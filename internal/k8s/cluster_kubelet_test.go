package k8s

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestClusterExpand: TestCluster runs the pods' commands with the
// kubelet's $(VAR) expansion; this is that expansion's behaviour.
func TestClusterExpand(t *testing.T) {
	env := map[string]string{"JOB_COMPLETION_INDEX": "7", "EMPTY": ""}
	for _, c := range []struct{ in, want string }{
		{"/results/seg-$(JOB_COMPLETION_INDEX)", "/results/seg-7"},
		{"$(JOB_COMPLETION_INDEX)$(JOB_COMPLETION_INDEX)", "77"},
		{"$(UNDEFINED)", "$(UNDEFINED)"},
		{"$$(JOB_COMPLETION_INDEX)", "$(JOB_COMPLETION_INDEX)"},
		{"a$(EMPTY)b", "ab"},
		{"$(JOB_COMPLETION_INDEX", "$(JOB_COMPLETION_INDEX"},
		{"$", "$"},
		{"cost $5", "cost $5"},
	} {
		if got := expand(c.in, env); got != c.want {
			t.Errorf("expand(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestClusterResolveEnv: the downward API and key references TestCluster
// resolves as a kubelet would, and the errors for what it does not.
func TestClusterResolveEnv(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "run-2-abcde", Namespace: "load",
		Annotations: map[string]string{"batch.kubernetes.io/job-completion-index": "2"}, Labels: map[string]string{"app": "x"}},
		Spec: corev1.PodSpec{NodeName: "node-b"}}
	k := &kubelet{configMaps: map[string]*corev1.ConfigMap{"cm": {Data: map[string]string{"k": "from-cm"}}},
		secrets: map[string]*corev1.Secret{"s": {Data: map[string][]byte{"p": []byte("from-secret")}}}}
	ref := func(path string) *corev1.EnvVarSource {
		return &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}
	}
	c := corev1.Container{Env: []corev1.EnvVar{
		{Name: "JOB_COMPLETION_INDEX", ValueFrom: ref("metadata.annotations['batch.kubernetes.io/job-completion-index']")},
		{Name: "OUT", Value: "/results/seg-$(JOB_COMPLETION_INDEX)"},
		{Name: "NODE", ValueFrom: ref("spec.nodeName")},
		{Name: "APP", ValueFrom: ref("metadata.labels['app']")},
		{Name: "CM", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "cm"}, Key: "k"}}},
		{Name: "S", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "s"}, Key: "p"}}},
	}}
	env, err := k.resolveEnv(pod, c)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"JOB_COMPLETION_INDEX": "2", "OUT": "/results/seg-2", "NODE": "node-b", "APP": "x", "CM": "from-cm", "S": "from-secret"} {
		if env[name] != want {
			t.Errorf("%s = %q, want %q", name, env[name], want)
		}
	}
	for _, bad := range []corev1.EnvVar{
		{Name: "X", ValueFrom: ref("status.podIP")},
		{Name: "X", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "missing"}, Key: "k"}}},
	} {
		if _, err := k.resolveEnv(pod, corev1.Container{Env: []corev1.EnvVar{bad}}); err == nil {
			t.Errorf("%+v resolved without error", bad.ValueFrom)
		}
	}
}
