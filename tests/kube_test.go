package tests

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/d3ad221e/redis-sentinel/internal/render"
)

// kubeFixtureEnv switches on the tests against a real API server: "1" starts the fixture of
// hack/kube-fixture.sh in a temporary directory, a path starts it there (so that a caller can
// stop it should the test be killed before its cleanup). The binaries come from the script's
// cache (REDIS_SENTINEL_KUBE_CACHE); `hack/kube-fixture.sh build` makes them.
const kubeFixtureEnv = "REDIS_SENTINEL_KUBE_FIXTURE"

// kubeFixture is a running control plane: etcd, kube-apiserver and kube-controller-manager. There
// is no scheduler and no kubelet, so pods are created and stay Pending.
type kubeFixture struct {
	dir string
}

// startKubeFixture starts the fixture, and stops it when the test ends, checking that its
// processes are gone. Without kubeFixtureEnv the test is skipped.
func startKubeFixture(t *testing.T) *kubeFixture {
	t.Helper()
	dir := os.Getenv(kubeFixtureEnv)
	switch dir {
	case "":
		t.Skipf("set %s=1 to run it, after hack/kube-fixture.sh build", kubeFixtureEnv)
	case "1":
		dir = t.TempDir()
	}
	script, err := filepath.Abs(filepath.Join(repoRoot, "hack", "kube-fixture.sh"))
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(dir, 0o755))
	dir, err = filepath.EvalSymlinks(dir)
	require.NoError(t, err)
	dir, err = filepath.Abs(dir)
	require.NoError(t, err)

	out, err := exec.Command(script, "start", dir).CombinedOutput()
	require.NoError(t, err, "hack/kube-fixture.sh start:\n%s", out)
	t.Logf("%s", out)
	t.Cleanup(func() {
		pids, err := os.ReadFile(filepath.Join(dir, "pids"))
		require.NoError(t, err)
		out, err := exec.Command(script, "stop", dir).CombinedOutput()
		require.NoError(t, err, "hack/kube-fixture.sh stop:\n%s", out)
		for _, line := range strings.Split(strings.TrimSpace(string(pids)), "\n") {
			name, pid, _ := strings.Cut(line, " ")
			cmdline, err := os.ReadFile("/proc/" + pid + "/cmdline")
			assert.False(t, err == nil && bytes.Contains(cmdline, []byte(dir+"/")), "%s (pid %s) still runs", name, pid)
		}
	})
	return &kubeFixture{dir: dir}
}

// kubectl runs the fixture's kubectl with stdin; it returns stdout, stderr and the error.
func (k *kubeFixture) kubectl(stdin []byte, args ...string) (string, string, error) {
	cmd := exec.Command(filepath.Join(k.dir, "kubectl"), append([]string{"--kubeconfig", filepath.Join(k.dir, "kubeconfig")}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// apply applies YAML documents, in their order, the way Pulumi's Kubernetes provider does:
// server-side. A server-side dry run goes through the same validation and admission, and stores
// nothing. It returns kubectl's stderr, where the API server's warnings show
// ("Warning: would violate PodSecurity ..."), and the error.
func (k *kubeFixture) apply(docs [][]byte, dryRun bool) (string, error) {
	args := []string{"apply", "--server-side", "--field-manager", "redis-sentinel", "-f", "-"}
	if dryRun {
		args = append(args, "--dry-run=server")
	}
	_, stderr, err := k.kubectl(bytes.Join(docs, []byte("---\n")), args...)
	return stderr, err
}

// mustApply applies documents that must be accepted with no warning at all.
func (k *kubeFixture) mustApply(t *testing.T, docs [][]byte, dryRun bool) {
	t.Helper()
	stderr, err := k.apply(docs, dryRun)
	require.NoError(t, err, "kubectl apply (dry run: %v):\n%s", dryRun, stderr)
	require.Empty(t, stderr, "kubectl apply (dry run: %v) printed warnings", dryRun)
}

// mustGet runs a kubectl command that must succeed and prints JSON, and decodes its output.
func (k *kubeFixture) mustGet(t *testing.T, into any, args ...string) {
	t.Helper()
	stdout, stderr, err := k.kubectl(nil, append(args, "-o", "json")...)
	require.NoError(t, err, "kubectl %v:\n%s", args, stderr)
	require.NoError(t, json.Unmarshal([]byte(stdout), into))
}

// restrictedNamespace creates a namespace that enforces, warns about and audits the
// "restricted" Pod Security Standard, whatever the release itself sets. Its own field manager
// keeps these labels when the release applies its Namespace with fewer of them.
func (k *kubeFixture) restrictedNamespace(t *testing.T, name string) {
	t.Helper()
	ns := corev1.Namespace{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
			"pod-security.kubernetes.io/enforce": "restricted",
			"pod-security.kubernetes.io/warn":    "restricted",
			"pod-security.kubernetes.io/audit":   "restricted",
		}},
	}
	_, stderr, err := k.kubectl(mustYAML(t, ns), "apply", "--server-side", "--field-manager", "kube-test", "-f", "-")
	require.NoError(t, err, stderr)
	require.Empty(t, stderr)
}

func mustYAML(t *testing.T, obj any) []byte {
	t.Helper()
	body, err := yaml.Marshal(obj)
	require.NoError(t, err)
	return body
}

// applyOrder is the order in which the objects of a release are applied, as Helm installs them:
// an object before those that refer to it (the ServiceAccount before the pods that run as it).
// A kind that is not listed fails the test, so that a new kind is given its place.
var applyOrder = []string{
	"Namespace", "StorageClass", "ServiceAccount", "Secret", "ConfigMap", "Service",
	"NetworkPolicy", "PodDisruptionBudget", "Certificate", "StatefulSet", "Deployment", "Job", "ServiceMonitor",
}

// kubeObject is one rendered Kubernetes object: its YAML and its decoded fields.
type kubeObject struct {
	body   []byte
	fields map[string]any
}

func (o kubeObject) kind() string { return o.fields["kind"].(string) }

// renderForKube renders a stack with a namespace of its own, and returns its Kubernetes
// objects in applyOrder: the YAML of the offline render, secrets redacted.
func renderForKube(t *testing.T, stack, namespace string, overrides map[string]string) []kubeObject {
	t.Helper()
	withNamespace := map[string]string{"namespace": namespace}
	for k, v := range overrides {
		withNamespace[k] = v
	}
	files, err := render.Manifests(mustRunCloudStack(t, stack, withNamespace).resources, false)
	require.NoError(t, err)
	var objects []kubeObject
	rank := map[string]int{}
	for i, kind := range applyOrder {
		rank[kind] = i
	}
	for name, body := range files {
		if name == render.PlanFile {
			continue
		}
		var fields map[string]any
		require.NoError(t, yaml.Unmarshal(body, &fields), name)
		o := kubeObject{body: body, fields: fields}
		_, known := rank[o.kind()]
		require.True(t, known, "%s: kind %s has no place in applyOrder", name, o.kind())
		objects = append(objects, o)
	}
	sort.Slice(objects, func(i, j int) bool {
		a, b := objects[i], objects[j]
		if rank[a.kind()] != rank[b.kind()] {
			return rank[a.kind()] < rank[b.kind()]
		}
		return path(a.fields, "metadata", "name").(string) < path(b.fields, "metadata", "name").(string)
	})
	return objects
}

// withRealCertificates gives a kubernetes.io/tls Secret of the render, whose values are
// placeholders there (the tls provider's output, redacted), a certificate and key, as
// `pulumi up` would: the API server checks that they are PEM.
func withRealCertificates(t *testing.T, objects []kubeObject) []kubeObject {
	t.Helper()
	for i, o := range objects {
		if o.kind() != "Secret" || o.fields["type"] != "kubernetes.io/tls" {
			continue
		}
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		template := &x509.Certificate{SerialNumber: big.NewInt(1), DNSNames: []string{"localhost"}, NotAfter: time.Now().Add(time.Hour)}
		der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
		require.NoError(t, err)
		keyDER, err := x509.MarshalECPrivateKey(key)
		require.NoError(t, err)
		cert := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
		o.fields["stringData"] = map[string]any{
			"tls.crt": cert, "ca.crt": cert,
			"tls.key": string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})),
		}
		body, err := yaml.Marshal(o.fields)
		require.NoError(t, err)
		objects[i] = kubeObject{body: body, fields: o.fields}
	}
	return objects
}

func bodies(objects []kubeObject) [][]byte {
	var out [][]byte
	for _, o := range objects {
		out = append(out, o.body)
	}
	return out
}

// podList and eventList are what the tests read of `kubectl get pods|events -o json`.
type podList struct {
	Items []corev1.Pod `json:"items"`
}

type eventList struct {
	Items []corev1.Event `json:"items"`
}

// waitForPods waits until the controllers have created the pods of every StatefulSet and
// Deployment among objects, as many as each asks for, and returns how long it took.
func (k *kubeFixture) waitForPods(t *testing.T, namespace string, objects []kubeObject, timeout time.Duration) time.Duration {
	t.Helper()
	want := map[string]int{}
	workloads := 0
	for _, o := range objects {
		if o.kind() != "StatefulSet" && o.kind() != "Deployment" {
			continue
		}
		workloads++
		var selector []string
		for key, value := range path(o.fields, "spec", "selector", "matchLabels").(map[string]any) {
			selector = append(selector, key+"="+value.(string))
		}
		sort.Strings(selector)
		want[strings.Join(selector, ",")] = int(path(o.fields, "spec", "replicas").(float64))
	}
	require.NotZero(t, workloads)
	require.Len(t, want, workloads, "every StatefulSet and Deployment with a selector of its own")
	start := time.Now()
	for {
		got := map[string]int{}
		for selector := range want {
			var pods podList
			k.mustGet(t, &pods, "get", "pods", "-n", namespace, "-l", selector)
			got[selector] = len(pods.Items)
		}
		if assert.ObjectsAreEqual(want, got) {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("after %s, pods by selector: %v, want %v", timeout, got, want)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// failedCreates returns the FailedCreate events of a namespace: a controller that could not
// create a pod (or a ReplicaSet, or a PVC). It logs the other warning events, which are expected
// without a scheduler, a kubelet or storage.
func (k *kubeFixture) failedCreates(t *testing.T, namespace string) []string {
	t.Helper()
	var events eventList
	k.mustGet(t, &events, "get", "events", "-n", namespace)
	var failed []string
	for _, e := range events.Items {
		switch {
		case e.Reason == "FailedCreate":
			failed = append(failed, e.InvolvedObject.Kind+" "+e.InvolvedObject.Name+": "+e.Message)
		case e.Type == corev1.EventTypeWarning:
			t.Logf("warning event: %s %s: %s: %s", e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Reason, e.Message)
		}
	}
	return failed
}

// Every stack's manifests, applied to a real API server with PodSecurity enforcing
// "restricted": accepted without a warning, and turned into pods by the controllers. The
// offline tests check the same objects against the Go types and the pod-security library; this
// one also sees the API server's validation and defaulting, its admission plugins, the
// ServiceMonitor CRD's schema and the controllers.
func TestTheRenderedStacksOnARealAPIServer(t *testing.T) {
	k := startKubeFixture(t)

	// The ServiceMonitor's CRD, and cert-manager's Certificate's (hack/kube-fixture.sh).
	certificateCRDs, err := filepath.Glob(filepath.Join(k.dir, "crds", "certificates.cert-manager-*.yaml"))
	require.NoError(t, err)
	require.Len(t, certificateCRDs, 1, "hack/kube-fixture.sh build fetches one")
	for _, crd := range []struct{ file, name string }{
		{filepath.Join(k.dir, "crds", "servicemonitors.yaml"), "servicemonitors.monitoring.coreos.com"},
		{certificateCRDs[0], "certificates.cert-manager.io"},
	} {
		body, err := os.ReadFile(crd.file)
		require.NoError(t, err)
		k.mustApply(t, [][]byte{body}, false)
		_, stderr, err := k.kubectl(nil, "wait", "--for", "condition=Established", "--timeout", "60s", "customresourcedefinition/"+crd.name)
		require.NoError(t, err, stderr)
	}

	for _, c := range []struct {
		name, stack string
		overrides   map[string]string
	}{
		{"local", "local", nil},
		{"local-cluster", "local-cluster", nil},
		{"gke", "gke", nil},
		{"eks", "eks", nil},
		// No stack file turns the ServiceMonitor on; this one checks it against the real CRD.
		{"local-servicemonitor", "local", map[string]string{"serviceMonitor": "true"}},
		// TLS, the certificate generated (a Secret of placeholders), or from cert-manager (checked
		// against the real CRD), or from a Secret of the user's (the pods wait for it).
		{"local-tls", "local-tls", nil},
		{"local-tls-cert-manager", "local", map[string]string{"tls": "true", "tlsIssuerName": "internal-ca", "tlsIssuerKind": "ClusterIssuer"}},
		{"local-tls-secret", "local", map[string]string{"tls": "true", "tlsSecretName": "redis-certs"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			namespace := "redis-" + c.name
			objects := withRealCertificates(t, renderForKube(t, c.stack, namespace, c.overrides))
			k.restrictedNamespace(t, namespace)
			k.mustApply(t, bodies(objects), true)
			k.mustApply(t, bodies(objects), false)
			took := k.waitForPods(t, namespace, objects, 60*time.Second)
			t.Logf("%d objects applied; the controllers created every pod in %s", len(objects), took.Round(100*time.Millisecond))
			assert.Empty(t, k.failedCreates(t, namespace))
		})
	}

	// The checks above must be able to fail: objects one setting away from the rendered ones
	// are refused, or warned about, by the same API server.
	t.Run("negative controls", func(t *testing.T) {
		namespace := "negative-controls"
		objects := renderForKube(t, "local", namespace, map[string]string{"serviceMonitor": "true"})
		k.restrictedNamespace(t, namespace)
		find := func(kind string) kubeObject {
			for _, o := range objects {
				if o.kind() == kind {
					return o
				}
			}
			t.Fatalf("no %s in the render", kind)
			return kubeObject{}
		}
		// The pods run as the release's ServiceAccount, which must exist for them to be admitted.
		k.mustApply(t, [][]byte{find("ServiceAccount").body}, false)

		haproxy := func(name string) appsv1.Deployment {
			var d appsv1.Deployment
			require.NoError(t, yaml.UnmarshalStrict(find("Deployment").body, &d))
			d.Name = name
			return d
		}
		pod := func(name string, template corev1.PodTemplateSpec) []byte {
			return mustYAML(t, corev1.Pod{
				TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
				ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: template.Labels},
				Spec:       template.Spec,
			})
		}
		// Root and privileged; allowPrivilegeEscalation follows privileged, or the API server's
		// validation, not PodSecurity, would refuse the pod.
		rendered := haproxy("haproxy").Spec.Template
		weakened := rendered.DeepCopy()
		root, yes, no := int64(0), true, false
		sc := weakened.Spec.Containers[0].SecurityContext
		sc.RunAsUser, sc.RunAsNonRoot, sc.Privileged, sc.AllowPrivilegeEscalation = &root, &no, &yes, &yes

		k.mustApply(t, [][]byte{pod("haproxy-as-rendered", rendered)}, true)
		stderr, err := k.apply([][]byte{pod("haproxy-as-root", *weakened)}, false)
		assert.Error(t, err, "a privileged pod running as root is refused")
		assert.Contains(t, stderr, `violates PodSecurity "restricted:latest"`)
		assert.Contains(t, stderr, "privileged")

		asRoot := haproxy("haproxy-as-root")
		asRoot.Spec.Template = *weakened
		stderr, err = k.apply([][]byte{mustYAML(t, asRoot)}, true)
		assert.NoError(t, err, "PodSecurity only warns about workloads; it refuses their pods")
		assert.Contains(t, stderr, "Warning: would violate PodSecurity", "the warning that mustApply fails on")

		withoutAccount := haproxy("haproxy-without-account")
		withoutAccount.Spec.Template.Spec.ServiceAccountName = "missing"
		k.mustApply(t, [][]byte{mustYAML(t, withoutAccount)}, false)
		var failed []string
		for start := time.Now(); len(failed) == 0 && time.Since(start) < 60*time.Second; time.Sleep(500 * time.Millisecond) {
			failed = k.failedCreates(t, namespace)
		}
		assert.NotEmpty(t, failed, "pods of a Deployment whose ServiceAccount does not exist cannot be created")
		assert.Contains(t, strings.Join(failed, "\n"), `serviceaccount "missing" not found`)

		mutated := func(o kubeObject, change func(fields map[string]any)) []byte {
			var fields map[string]any
			require.NoError(t, yaml.Unmarshal(o.body, &fields))
			change(fields)
			return mustYAML(t, fields)
		}
		for _, c := range []struct {
			name, kind, want string
			change           func(fields map[string]any)
		}{
			{"an unknown enum value", "StatefulSet", `spec.podManagementPolicy: Invalid value: "Sometimes"`, func(f map[string]any) {
				path(f, "spec").(map[string]any)["podManagementPolicy"] = "Sometimes"
			}},
			{"an unknown field", "StatefulSet", `.spec.replica: field not declared in schema`, func(f map[string]any) {
				path(f, "spec").(map[string]any)["replica"] = 3
			}},
			{"a value outside the CRD's enum", "ServiceMonitor", `Unsupported value: "gopher"`, func(f map[string]any) {
				path(f, "spec").(map[string]any)["endpoints"].([]any)[0].(map[string]any)["scheme"] = "gopher"
			}},
		} {
			stderr, err := k.apply([][]byte{mutated(find(c.kind), c.change)}, false)
			assert.Error(t, err, "%s in a %s is refused", c.name, c.kind)
			assert.Contains(t, stderr, c.want, c.name)
		}
	})
}
