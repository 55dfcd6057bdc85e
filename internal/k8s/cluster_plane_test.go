package k8s

// The control plane of TestCluster: etcd, kube-apiserver,
// kube-controller-manager and kube-scheduler, the binaries that
// scripts/k8s-check builds from their Go modules, started on free loopback
// ports with throwaway certificates and stopped by PID when the test ends.
// No kubelet runs: the nodes are plain Node objects.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"k8s.io/client-go/util/retry"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// envClusterBin names the directory of the four binaries.
const envClusterBin = "STAMPEDE_K8S_BIN"

var clusterBinaries = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"}

// plane is a running control plane.
type plane struct {
	dir     string
	cfg     *rest.Config // system:masters
	version string
}

// clusterBinDir returns the binaries' directory, or skips the test saying
// how to get them.
func clusterBinDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv(envClusterBin)
	if dir == "" {
		t.Skip("needs a real control plane: run scripts/k8s-check (or set " + envClusterBin + " to the directory of etcd, kube-apiserver, kube-controller-manager and kube-scheduler)")
	}
	for _, b := range clusterBinaries {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			t.Skipf("%s=%s lacks %s: run scripts/k8s-check build", envClusterBin, dir, b)
		}
	}
	return dir
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// pki holds a throwaway CA and what it signs.
type pki struct {
	caCert *x509.Certificate
	caKey  *ecdsa.PrivateKey
	caPEM  []byte
	serial int64
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "stampede-k8s-check-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &pki{caCert: cert, caKey: key, caPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), serial: 1}
}

// issue returns a certificate and its key in PEM: a server's for
// 127.0.0.1 and localhost when server, else a client's with the user cn in
// the groups orgs.
func (p *pki) issue(t *testing.T, cn string, orgs []string, server bool) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p.serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(p.serial), Subject: pkix.Name{CommonName: cn, Organization: orgs},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		tmpl.DNSNames = []string{"localhost", "kubernetes", "kubernetes.default.svc"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd})
}

func writeFile(t *testing.T, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
}

// kubeconfig writes a kubeconfig for the user cn (groups orgs) and
// returns its path.
func (p *pki) kubeconfig(t *testing.T, dir, name, server, cn string, orgs []string) string {
	t.Helper()
	cert, key := p.issue(t, cn, orgs, false)
	path := filepath.Join(dir, name+".kubeconfig")
	b64 := base64.StdEncoding.EncodeToString
	writeFile(t, path, fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters:
- name: local
  cluster: {server: %q, certificate-authority-data: %s}
users:
- name: %s
  user: {client-certificate-data: %s, client-key-data: %s}
contexts:
- name: local
  context: {cluster: local, user: %s}
current-context: local
`, server, b64(p.caPEM), name, b64(cert), b64(key), name), 0o600)
	return path
}

// proc is a started binary; stop ends it by its PID.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func startProc(t *testing.T, dir, bin, name string, args ...string) *proc {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(bin, name), args...)
	cmd.Stdout, cmd.Stderr = f, f
	// Should the test binary die, the kernel ends the component too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("%s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); f.Close(); close(p.done) }()
	t.Cleanup(func() { p.stop() })
	return p
}

// stop sends SIGTERM to the process's PID, then SIGKILL after 15 s.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// tail is the end of the process's log, for failures.
func (p *proc) tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return fmt.Sprintf("--- %s (%s) ---\n%s", p.name, p.log, b)
}

// startPlane starts etcd and the three components and waits until the API
// server is ready, the default service account exists and the scheduler
// and controller manager run.
func startPlane(t *testing.T, bin string) *plane {
	t.Helper()
	dir := t.TempDir()
	p := newPKI(t)
	writeFile(t, filepath.Join(dir, "ca.crt"), p.caPEM, 0o644)
	srvCert, srvKey := p.issue(t, "kube-apiserver", nil, true)
	writeFile(t, filepath.Join(dir, "apiserver.crt"), srvCert, 0o644)
	writeFile(t, filepath.Join(dir, "apiserver.key"), srvKey, 0o600)
	// The service accounts' signing key.
	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	saPub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "sa.key"), pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(saKey)}), 0o600)
	writeFile(t, filepath.Join(dir, "sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: saPub}), 0o644)

	etcdClient, etcdPeer := freePort(t), freePort(t)
	etcd := startProc(t, dir, bin, "etcd",
		"--name=default", "--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls=http://127.0.0.1:"+strconv.Itoa(etcdClient),
		"--advertise-client-urls=http://127.0.0.1:"+strconv.Itoa(etcdClient),
		"--listen-peer-urls=http://127.0.0.1:"+strconv.Itoa(etcdPeer),
		"--initial-advertise-peer-urls=http://127.0.0.1:"+strconv.Itoa(etcdPeer),
		"--initial-cluster=default=http://127.0.0.1:"+strconv.Itoa(etcdPeer),
		"--unsafe-no-fsync", "--log-level=warn")

	apiPort := freePort(t)
	server := "https://127.0.0.1:" + strconv.Itoa(apiPort)
	api := startProc(t, dir, bin, "kube-apiserver",
		"--etcd-servers=http://127.0.0.1:"+strconv.Itoa(etcdClient),
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port="+strconv.Itoa(apiPort),
		"--tls-cert-file="+filepath.Join(dir, "apiserver.crt"), "--tls-private-key-file="+filepath.Join(dir, "apiserver.key"),
		"--client-ca-file="+filepath.Join(dir, "ca.crt"),
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file="+filepath.Join(dir, "sa.pub"),
		"--service-account-signing-key-file="+filepath.Join(dir, "sa.key"),
		"--service-cluster-ip-range=10.96.0.0/24",
		"--authorization-mode=Node,RBAC",
		// no endpoints of the "kubernetes" Service on a loopback address
		"--endpoint-reconciler-type=none",
		"--profiling=false")

	adminCert, adminKey := p.issue(t, "stampede-k8s-check", []string{"system:masters"}, false)
	cfg := &rest.Config{Host: server, TLSClientConfig: rest.TLSClientConfig{CAData: p.caPEM, CertData: adminCert, KeyData: adminKey},
		QPS: 100, Burst: 200}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var ready []byte
	for {
		ready, err = cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err == nil {
			break
		}
		if etcd.exited() || api.exited() || ctx.Err() != nil {
			t.Fatalf("kube-apiserver not ready: %v %s\n%s\n%s", err, ready, etcd.tail(), api.tail())
		}
		time.Sleep(300 * time.Millisecond)
	}
	sv, err := cs.Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}

	kcmCfg := p.kubeconfig(t, dir, "controller-manager", server, "system:kube-controller-manager", nil)
	kcm := startProc(t, dir, bin, "kube-controller-manager",
		"--kubeconfig="+kcmCfg, "--authentication-kubeconfig="+kcmCfg, "--authorization-kubeconfig="+kcmCfg,
		"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(freePort(t)),
		"--leader-elect=false", "--use-service-account-credentials=true",
		"--service-account-private-key-file="+filepath.Join(dir, "sa.key"),
		"--root-ca-file="+filepath.Join(dir, "ca.crt"),
		// No kubelet renews the nodes' Leases or status: without the node
		// lifecycle controller nobody marks them NotReady or taints them.
		"--controllers=*,-node-lifecycle-controller",
		"--profiling=false")
	schedCfg := p.kubeconfig(t, dir, "scheduler", server, "system:kube-scheduler", nil)
	sched := startProc(t, dir, bin, "kube-scheduler",
		"--kubeconfig="+schedCfg, "--authentication-kubeconfig="+schedCfg, "--authorization-kubeconfig="+schedCfg,
		"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(freePort(t)),
		"--leader-elect=false", "--profiling=false")

	// The service account controller makes "default" in every namespace:
	// the controller manager is up once kube-system has it.
	for {
		_, err := cs.CoreV1().ServiceAccounts("kube-system").Get(ctx, "default", metav1.GetOptions{})
		if err == nil {
			break
		}
		if kcm.exited() || sched.exited() || ctx.Err() != nil {
			t.Fatalf("controller manager not running: %v\n%s\n%s", err, kcm.tail(), sched.tail())
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, pr := range []*proc{kcm, sched, api} {
				t.Log(pr.tail())
			}
		}
	})
	return &plane{dir: dir, cfg: cfg, version: sv.GitVersion}
}

// addNode registers a Node as a kubelet would, with no kubelet behind it:
// Ready, the allocatable resources given, the hostname label, and without
// the not-ready taint that admission puts on a new node (the node
// lifecycle controller, off here, would take it away once Ready).
func addNode(t *testing.T, ctx context.Context, cs kubernetes.Interface, name, cpu, memory string) {
	t.Helper()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
		corev1.LabelHostname: name, corev1.LabelOSStable: "linux", corev1.LabelArchStable: "amd64"}}}
	if _, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	res := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(memory),
		corev1.ResourcePods: resource.MustParse("110"), corev1.ResourceEphemeralStorage: resource.MustParse("100Gi")}
	now := metav1.Now()
	status := corev1.NodeStatus{Capacity: res, Allocatable: res, Phase: corev1.NodeRunning,
		Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
			Message: "no kubelet: a Node object of stampede's cluster check", LastHeartbeatTime: now, LastTransitionTime: now}},
		NodeInfo: corev1.NodeSystemInfo{OperatingSystem: "linux", Architecture: "amd64"}}
	// Controllers (ttl, attach-detach) annotate a new node at once: each
	// update is retried on a conflict, from the node as it is now.
	update := func(change func(*corev1.Node) error) {
		t.Helper()
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			cur, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			return change(cur)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	update(func(n *corev1.Node) error {
		n.Status = status
		_, err := cs.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
		return err
	})
	update(func(n *corev1.Node) error {
		n.Spec.Taints = nil
		_, err := cs.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
		return err
	})
}

// warnLog collects the API server's warnings (the Warning header).
type warnLog struct {
	mu   sync.Mutex
	list []string
}

func (w *warnLog) HandleWarningHeader(code int, agent, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.list = append(w.list, fmt.Sprintf("%d %s", code, text))
}

// take returns the warnings since the last take.
func (w *warnLog) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	l := w.list
	w.list = nil
	return l
}

var _ rest.WarningHandler = (*warnLog)(nil)
