package k8s

// A container of a pod read back from the API server, run on this machine
// as a kubelet would run it, for TestCluster: its environment resolved from
// the pod (downward API field references, ConfigMap and Secret keys), its
// $(VAR) arguments expanded, each volumeMount bound at its path in a
// mount namespace over a root file system that holds only the image's
// binary (as distroless does), the root read-only, run as the pod's user
// and group with its fsGroup, through chroot. The network is the host's:
// the lab listens on loopback.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// imageEntrypoint is the Dockerfile's ENTRYPOINT; imageEnv its
// environment (distroless's nonroot image).
const imageEntrypoint = "/usr/local/bin/stampede"

var imageEnv = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/home/nonroot", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"}

// kubelet is what the "kubelet" has: the pod's objects and the volumes.
type kubelet struct {
	bin        string // the stampede binary, statically linked
	configMaps map[string]*corev1.ConfigMap
	secrets    map[string]*corev1.Secret
	claimDirs  map[string]string // claim name → its shared directory
	dir        string            // where pods' files go
}

// containerRun is one container to run.
type containerRun struct {
	pod       *corev1.Pod
	container corev1.Container
	env       map[string]string // resolved
	argv      []string          // expanded, the entrypoint first
	root      string
	script    string
}

// fieldRef resolves a downward API field path of the pod.
func fieldRef(pod *corev1.Pod, path string) (string, error) {
	sub := func(prefix string, m map[string]string) (string, bool) {
		if k, ok := strings.CutPrefix(path, prefix+"['"); ok && strings.HasSuffix(k, "']") {
			return m[strings.TrimSuffix(k, "']")], true
		}
		return "", false
	}
	if v, ok := sub("metadata.annotations", pod.Annotations); ok {
		return v, nil
	}
	if v, ok := sub("metadata.labels", pod.Labels); ok {
		return v, nil
	}
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	}
	return "", fmt.Errorf("field path %q: not resolved by this check", path)
}

// expand is the kubelet's $(VAR) expansion: a defined VAR is replaced,
// $$ is a literal $, anything else is left as written.
func expand(s string, env map[string]string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := env[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

// resolveEnv is the container's environment as the kubelet sets it:
// envFrom, then env in order, each value expanded against those before.
func (k *kubelet) resolveEnv(pod *corev1.Pod, c corev1.Container) (map[string]string, error) {
	env := map[string]string{}
	set := func(name, v string) { env[name] = v }
	for _, ef := range c.EnvFrom {
		switch {
		case ef.ConfigMapRef != nil:
			cm := k.configMaps[ef.ConfigMapRef.Name]
			if cm == nil {
				return nil, fmt.Errorf("envFrom: ConfigMap %s not found", ef.ConfigMapRef.Name)
			}
			for key, v := range cm.Data {
				set(ef.Prefix+key, v)
			}
		case ef.SecretRef != nil:
			s := k.secrets[ef.SecretRef.Name]
			if s == nil {
				return nil, fmt.Errorf("envFrom: Secret %s not found", ef.SecretRef.Name)
			}
			for key, v := range s.Data {
				set(ef.Prefix+key, string(v))
			}
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			set(e.Name, expand(e.Value, env))
			continue
		}
		switch vf := e.ValueFrom; {
		case vf.FieldRef != nil:
			v, err := fieldRef(pod, vf.FieldRef.FieldPath)
			if err != nil {
				return nil, fmt.Errorf("env %s: %w", e.Name, err)
			}
			set(e.Name, v)
		case vf.ConfigMapKeyRef != nil:
			cm := k.configMaps[vf.ConfigMapKeyRef.Name]
			if cm == nil {
				return nil, fmt.Errorf("env %s: ConfigMap %s not found", e.Name, vf.ConfigMapKeyRef.Name)
			}
			set(e.Name, cm.Data[vf.ConfigMapKeyRef.Key])
		case vf.SecretKeyRef != nil:
			s := k.secrets[vf.SecretKeyRef.Name]
			if s == nil {
				return nil, fmt.Errorf("env %s: Secret %s not found", e.Name, vf.SecretKeyRef.Name)
			}
			set(e.Name, string(s.Data[vf.SecretKeyRef.Key]))
		default:
			return nil, fmt.Errorf("env %s: a valueFrom this check does not resolve", e.Name)
		}
	}
	return env, nil
}

func podVolume(pod *corev1.Pod, name string) (corev1.Volume, bool) {
	for _, v := range pod.Spec.Volumes {
		if v.Name == name {
			return v, true
		}
	}
	return corev1.Volume{}, false
}

// volumeDir makes the directory a volume of the pod is on this machine.
func (k *kubelet) volumeDir(pod *corev1.Pod, v corev1.Volume, fsGroup *int64) (string, error) {
	podDir := filepath.Join(k.dir, "pods", pod.Name, "volumes", v.Name)
	writeItems := func(dir string, data map[string][]byte, items []corev1.KeyToPath) error {
		if len(items) == 0 {
			for key := range data {
				items = append(items, corev1.KeyToPath{Key: key, Path: key})
			}
		}
		for _, it := range items {
			b, ok := data[it.Key]
			if !ok {
				return fmt.Errorf("volume %s: key %s not found", v.Name, it.Key)
			}
			p := filepath.Join(dir, it.Path)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(p, b, 0o644); err != nil { // defaultMode 0644
				return err
			}
		}
		return nil
	}
	cmData := func(name string) (map[string][]byte, error) {
		cm := k.configMaps[name]
		if cm == nil {
			return nil, fmt.Errorf("volume %s: ConfigMap %s not found", v.Name, name)
		}
		d := map[string][]byte{}
		for key, val := range cm.Data {
			d[key] = []byte(val)
		}
		return d, nil
	}
	secretData := func(name string) (map[string][]byte, error) {
		s := k.secrets[name]
		if s == nil {
			return nil, fmt.Errorf("volume %s: Secret %s not found", v.Name, name)
		}
		return s.Data, nil
	}
	switch {
	case v.PersistentVolumeClaim != nil:
		dir, ok := k.claimDirs[v.PersistentVolumeClaim.ClaimName]
		if !ok {
			return "", fmt.Errorf("volume %s: claim %s has no directory", v.Name, v.PersistentVolumeClaim.ClaimName)
		}
		return dir, ownVolume(dir, fsGroup)
	case v.EmptyDir != nil:
		if err := os.MkdirAll(podDir, 0o777); err != nil {
			return "", err
		}
		return podDir, ownVolume(podDir, fsGroup)
	case v.ConfigMap != nil:
		d, err := cmData(v.ConfigMap.Name)
		if err != nil {
			return "", err
		}
		return podDir, writeItems(podDir, d, v.ConfigMap.Items)
	case v.Secret != nil:
		d, err := secretData(v.Secret.SecretName)
		if err != nil {
			return "", err
		}
		return podDir, writeItems(podDir, d, v.Secret.Items)
	case v.Projected != nil:
		if err := os.MkdirAll(podDir, 0o755); err != nil {
			return "", err
		}
		for _, s := range v.Projected.Sources {
			var d map[string][]byte
			var items []corev1.KeyToPath
			var err error
			switch {
			case s.ConfigMap != nil:
				d, err = cmData(s.ConfigMap.Name)
				items = s.ConfigMap.Items
			case s.Secret != nil:
				d, err = secretData(s.Secret.Name)
				items = s.Secret.Items
			case s.DownwardAPI != nil:
				d = map[string][]byte{}
				for _, it := range s.DownwardAPI.Items {
					if it.FieldRef == nil {
						continue
					}
					val, ferr := fieldRef(pod, it.FieldRef.FieldPath)
					if ferr != nil {
						return "", ferr
					}
					d[it.Path] = []byte(val)
					items = append(items, corev1.KeyToPath{Key: it.Path, Path: it.Path})
				}
			case s.ServiceAccountToken != nil:
				// The token of the service account admission's
				// kube-api-access volume: stampede never reads it.
				continue
			}
			if err != nil {
				return "", err
			}
			if err := writeItems(podDir, d, items); err != nil {
				return "", err
			}
		}
		return podDir, nil
	}
	return "", fmt.Errorf("volume %s: a kind this check does not map", v.Name)
}

// ownVolume gives a writable volume to the pod's fsGroup, as the kubelet
// does for volumes that support ownership management.
func ownVolume(dir string, fsGroup *int64) error {
	if fsGroup == nil {
		return nil
	}
	if err := os.Chown(dir, 0, int(*fsGroup)); err != nil {
		return err
	}
	return os.Chmod(dir, 0o2775)
}

// prepare resolves the container and writes its root and script.
func (k *kubelet) prepare(pod *corev1.Pod, c corev1.Container) (*containerRun, error) {
	env, err := k.resolveEnv(pod, c)
	if err != nil {
		return nil, err
	}
	argv := c.Command
	if len(argv) == 0 {
		argv = []string{imageEntrypoint}
	}
	args := append(append([]string(nil), argv...), c.Args...)
	for i := range args {
		args[i] = expand(args[i], env)
	}
	psc := pod.Spec.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	user, group := int64(0), int64(0)
	if psc.RunAsUser != nil {
		user = *psc.RunAsUser
	}
	if psc.RunAsGroup != nil {
		group = *psc.RunAsGroup
	}
	if sc := c.SecurityContext; sc != nil {
		if sc.RunAsUser != nil {
			user = *sc.RunAsUser
		}
		if sc.RunAsGroup != nil {
			group = *sc.RunAsGroup
		}
	}
	if psc.RunAsNonRoot != nil && *psc.RunAsNonRoot && user == 0 {
		return nil, fmt.Errorf("container %s: runAsNonRoot with user 0: the kubelet refuses to start it", c.Name)
	}
	root := filepath.Join(k.dir, "pods", pod.Name, c.Name, "rootfs")
	for _, d := range []string{"usr/local/bin", "etc", "dev", "proc", "tmp", "home/nonroot"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return nil, err
		}
	}
	if err := copyFile(k.bin, filepath.Join(root, strings.TrimPrefix(imageEntrypoint, "/")), 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(root, "etc/group"), []byte("root:x:0:\nnonroot:x:65532:\n"), 0o644); err != nil {
		return nil, err
	}
	var sh strings.Builder
	q := strconv.Quote
	fmt.Fprintf(&sh, "set -e\nmount --bind %s %s\n", q(root), q(root))
	for _, m := range c.VolumeMounts {
		v, ok := podVolume(pod, m.Name)
		if !ok {
			return nil, fmt.Errorf("container %s: mount %s: no volume %s in the pod", c.Name, m.MountPath, m.Name)
		}
		src, err := k.volumeDir(pod, v, psc.FSGroup)
		if err != nil {
			return nil, err
		}
		if m.SubPath != "" {
			src = filepath.Join(src, m.SubPath)
			// The kubelet makes a missing subPath directory.
			if err := os.MkdirAll(src, 0o755); err != nil {
				return nil, err
			}
			if err := ownVolume(src, psc.FSGroup); err != nil {
				return nil, err
			}
		}
		dst := filepath.Join(root, m.MountPath)
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return nil, err
		}
		fmt.Fprintf(&sh, "mount --bind %s %s\n", q(src), q(dst))
		if m.ReadOnly {
			fmt.Fprintf(&sh, "mount -o remount,bind,ro %s\n", q(dst))
		}
	}
	fmt.Fprintf(&sh, "mount --rbind /dev %s\nmount -t proc proc %s\n", q(filepath.Join(root, "dev")), q(filepath.Join(root, "proc")))
	if sc := c.SecurityContext; sc != nil && sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem {
		fmt.Fprintf(&sh, "mount -o remount,bind,ro %s\n", q(root))
	}
	groups := ""
	if psc.FSGroup != nil {
		groups = " --groups=" + strconv.FormatInt(*psc.FSGroup, 10)
	}
	fmt.Fprintf(&sh, "exec /usr/sbin/chroot --userspec=%d:%d%s %s \"$@\"\n", user, group, groups, q(root))

	return &containerRun{pod: pod, container: c, env: env, argv: args, root: root, script: sh.String()}, nil
}

// cmd is the container's process: unshare runs the script in a new mount
// namespace, which chroots into the root and execs the entrypoint with
// the container's environment only.
func (cr *containerRun) cmd(ctx context.Context, out io.Writer) *exec.Cmd {
	args := append([]string{"--mount", "--propagation", "private", "--", "/bin/sh", "-c", cr.script, "sh"}, cr.argv...)
	cmd := exec.CommandContext(ctx, "/usr/bin/unshare", args...)
	env := append([]string(nil), imageEnv...)
	env = append(env, "HOSTNAME="+cr.pod.Spec.Hostname,
		// enableServiceLinks: false leaves the API server's own
		"KUBERNETES_SERVICE_HOST=10.96.0.1", "KUBERNETES_SERVICE_PORT=443")
	for name, v := range cr.env {
		env = append(env, name+"="+v)
	}
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// run runs the container and returns its exit status and output.
func (cr *containerRun) run(ctx context.Context) (int, string, error) {
	var out bytes.Buffer
	err := cr.cmd(ctx, &out).Run()
	if err == nil {
		return 0, out.String(), nil
	}
	if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() > 0 {
		return ee.ExitCode(), out.String(), nil
	}
	return -1, out.String(), err
}

func copyFile(src, dst string, mode os.FileMode) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, mode)
}

// checkRunnable skips the test when this machine cannot run a container so.
func checkRunnable(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("runs the pods' containers with unshare and chroot: needs root (scripts/k8s-check runs as root on this project's machines)")
	}
	for _, p := range []string{"/usr/bin/unshare", "/usr/sbin/chroot", "/bin/sh"} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("runs the pods' containers with %s: %v", p, err)
		}
	}
}
