package lab

import (
	"bytes"
	"embed"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/d3ad221e/redis-sentinel/internal/render"
	"github.com/d3ad221e/redis-sentinel/stacks"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// workload is what the lab runs the same way for both kinds of release: the redis StatefulSet,
// the files of the ConfigMaps its pods mount, and the names of its Services.
type workload struct {
	statefulSet appsv1.StatefulSet
	configMap   map[string]string // the keys of every ConfigMap
	headless    string            // the headless Service (pods' DNS subdomain)
	namespace   string
	// extraNames are DNS names of Services in front of every redis pod (a cluster's seed Service).
	extraNames []string
	// credentialsJob is the Job that brings running servers to the Secret's passwords (nil in
	// the baseline, which has none).
	credentialsJob *batchv1.Job
	// certificate is the data of the certificate Secret the lab made for a release with TLS
	// (the pods mount a tls volume), signed by authority; nil without.
	certificate map[string]string
	authority   *labAuthority
}

// release is what the lab runs of a Sentinel release's render: its workload, the HAProxy
// Deployment and the names clients use.
type release struct {
	workload
	haproxy       appsv1.Deployment
	masterService string // the Service in front of HAProxy
	// sentinelService is the ClusterIP Service of the sentinels (the real node's test watches it).
	sentinelService string
	// readEndpoint: HAProxy serves the read endpoint (port "redis-read"), which the client reads
	// through. The baseline has none.
	readEndpoint bool
}

// renderStack renders a stack exactly as `cmd/render -stack NAME` does, in memory, with the
// config keys of values set over the stack file's (such as engine: redis or valkey).
func renderStack(repoRoot, stack string, values map[string]string) (map[string][]byte, error) {
	cfg, err := render.LoadStackConfig(repoRoot, stack)
	if err != nil {
		return nil, err
	}
	for key, value := range values {
		cfg.Values[cfg.Project+":"+key] = value
	}
	rec, err := render.Run(stacks.Run, cfg, false)
	if err != nil {
		return nil, err
	}
	return render.Manifests(rec.Resources(), false)
}

// readRender reads the files of an earlier `cmd/render` run.
func readRender(dir string) (map[string][]byte, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".yaml") {
			if files[e.Name()], err = os.ReadFile(filepath.Join(dir, e.Name())); err != nil {
				return nil, err
			}
		}
	}
	return files, nil
}

// objects are the Kubernetes objects of a render that the lab reads.
type objects struct {
	statefulSets []appsv1.StatefulSet
	deployments  []appsv1.Deployment
	configMaps   []corev1.ConfigMap
	services     []corev1.Service
	jobs         []batchv1.Job
}

// parseObjects reads every manifest of a render, strictly: an unknown field is an error.
func parseObjects(files map[string][]byte) (*objects, error) {
	var o objects
	for name, body := range files {
		if !strings.HasSuffix(name, ".yaml") {
			continue // plan.json
		}
		var meta struct{ Kind string }
		if err := yaml.Unmarshal(body, &meta); err != nil {
			return nil, fmt.Errorf("%s: %v", name, err)
		}
		var err error
		switch meta.Kind {
		case "StatefulSet":
			o.statefulSets = append(o.statefulSets, appsv1.StatefulSet{})
			err = yaml.UnmarshalStrict(body, &o.statefulSets[len(o.statefulSets)-1])
		case "Deployment":
			o.deployments = append(o.deployments, appsv1.Deployment{})
			err = yaml.UnmarshalStrict(body, &o.deployments[len(o.deployments)-1])
		case "ConfigMap":
			o.configMaps = append(o.configMaps, corev1.ConfigMap{})
			err = yaml.UnmarshalStrict(body, &o.configMaps[len(o.configMaps)-1])
		case "Service":
			o.services = append(o.services, corev1.Service{})
			err = yaml.UnmarshalStrict(body, &o.services[len(o.services)-1])
		case "Job":
			o.jobs = append(o.jobs, batchv1.Job{})
			err = yaml.UnmarshalStrict(body, &o.jobs[len(o.jobs)-1])
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %v", name, err)
		}
	}
	return &o, nil
}

// workload returns the render's redis StatefulSet, the files of every ConfigMap (their keys are
// distinct: one map serves every pod), and its headless Service.
func (o *objects) workload() (workload, error) {
	var w workload
	if len(o.statefulSets) != 1 || len(o.configMaps) == 0 {
		return w, fmt.Errorf("lab: the render has %d StatefulSets and %d ConfigMaps, want one and some", len(o.statefulSets), len(o.configMaps))
	}
	w.statefulSet, w.namespace = o.statefulSets[0], o.statefulSets[0].Namespace
	for _, cm := range o.configMaps {
		w.configMap = merge(w.configMap, cm.Data)
	}
	for _, svc := range o.services {
		if svc.Spec.ClusterIP == corev1.ClusterIPNone {
			w.headless = svc.Name
		}
	}
	if w.headless == "" {
		return w, fmt.Errorf("lab: the render has no headless Service")
	}
	for i, job := range o.jobs {
		if job.Labels["app.kubernetes.io/component"] == "credentials" {
			w.credentialsJob = &o.jobs[i]
		}
	}
	for _, v := range w.statefulSet.Spec.Template.Spec.Volumes {
		if v.Name != tlsVolume {
			continue
		}
		// The names the component's certificate has (certificateNames): every pod, every
		// Service, localhost.
		names := []string{"*." + w.podDomain(), "localhost"}
		for _, svc := range o.services {
			names = append(names, fmt.Sprintf("%s.%s.svc.cluster.local", svc.Name, w.namespace))
		}
		var err error
		if w.authority, err = newLabAuthority(names); err != nil {
			return w, err
		}
		if w.certificate, _, err = w.authority.issue(); err != nil {
			return w, err
		}
	}
	return w, nil
}

// parseRelease picks out of rendered files the objects the lab runs of a Sentinel release.
func parseRelease(files map[string][]byte) (*release, error) {
	o, err := parseObjects(files)
	if err != nil {
		return nil, err
	}
	w, err := o.workload()
	if err != nil {
		return nil, err
	}
	rel := release{workload: w}
	if len(o.deployments) != 1 {
		return nil, fmt.Errorf("lab: the render has %d Deployments, want the HAProxy one", len(o.deployments))
	}
	rel.haproxy = o.deployments[0]
	rel.readEndpoint = rel.haproxyPort("redis-read") != 0
	for _, svc := range o.services {
		switch {
		case svc.Spec.Selector["app.kubernetes.io/component"] == "haproxy":
			rel.masterService = svc.Name
		case len(svc.Spec.Ports) == 1 && svc.Spec.Ports[0].Name == "sentinel":
			rel.sentinelService = svc.Name
		}
	}
	if rel.masterService == "" || rel.sentinelService == "" {
		return nil, fmt.Errorf("lab: the render lacks the HAProxy or the sentinel Service")
	}
	return &rel, nil
}

// env returns a value the redis container's environment sets literally.
func (r *workload) env(name string) string {
	for _, e := range r.statefulSet.Spec.Template.Spec.Containers[0].Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// clientConfig is what the client needs to know of the release; the caller adds where it runs
// (DNS server, subnets), the password and which HAProxy it asks for health.
func (r *release) clientConfig() clientConfig {
	redisPort, _ := strconv.Atoi(r.env("REDIS_PORT"))
	sentinelPort, _ := strconv.Atoi(r.env("SENTINEL_PORT"))
	var pods []string
	for i := range r.replicas() {
		pods = append(pods, fmt.Sprintf("%s-%d", r.statefulSet.Name, i))
	}
	cfg := clientConfig{
		MasterService: fmt.Sprintf("%s.%s.svc.cluster.local", r.masterService, r.namespace),
		Pods:          pods, PodDomain: r.podDomain(), MasterSet: r.env("MASTER_SET"),
		RedisPort: redisPort, SentinelPort: sentinelPort, HealthPort: r.haproxyPort("health"),
		WriteInterval: Duration(writeInterval), SampleInterval: Duration(sampleInterval),
	}
	if r.readEndpoint {
		cfg.ReadPort = r.haproxyPort("redis-read")
	}
	cfg.CACert = r.certificate["ca.crt"]
	return cfg
}

// haproxyPort is the port HAProxy's container names name, or 0.
func (r *release) haproxyPort(name string) int {
	for _, p := range r.haproxy.Spec.Template.Spec.Containers[0].Ports {
		if p.Name == name {
			return int(p.ContainerPort)
		}
	}
	return 0
}

func (r *workload) replicas() int { return int(*r.statefulSet.Spec.Replicas) }

func (r *workload) podDomain() string {
	return fmt.Sprintf("%s.%s.svc.cluster.local", r.headless, r.namespace)
}

// The baseline is the classic hand-made setup the issue describes, run in the same pods: only
// the ConfigMap's files differ, and the redis container has no preStop hook.
//
//go:embed baseline
var baselineFiles embed.FS

// Baseline sentinel timings: what the classic setups ship.
const (
	baselineDownAfterMilliseconds       = 10000
	baselineFailoverTimeoutMilliseconds = 20000
)

// asBaseline returns a copy of the release with the baseline's files, no preStop, and the
// password in its containers' environment (passwordEnv).
func (r *release) asBaseline() (*release, error) {
	out := *r
	out.statefulSet = *r.statefulSet.DeepCopy()
	spec := &out.statefulSet.Spec.Template.Spec
	for i := range spec.Containers {
		spec.Containers[i].Lifecycle = nil
	}
	passwordEnv(spec)
	out.haproxy = *r.haproxy.DeepCopy()
	passwordEnv(&out.haproxy.Spec.Template.Spec)
	out.credentialsJob = nil
	// The classic setup speaks plain text, whatever ours does.
	out.certificate, out.authority = nil, nil
	var pods []string
	for i := range r.replicas() {
		pods = append(pods, fmt.Sprintf("%s-%d.%s", r.statefulSet.Name, i, r.podDomain()))
	}
	quorum := r.replicas()/2 + 1
	data := map[string]any{
		"Pods":                        pods,
		"MasterSet":                   r.env("MASTER_SET"),
		"Quorum":                      quorum,
		"DownAfterMilliseconds":       baselineDownAfterMilliseconds,
		"FailoverTimeoutMilliseconds": baselineFailoverTimeoutMilliseconds,
	}
	files, err := renderBaseline("baseline", data)
	if err != nil {
		return nil, err
	}
	out.configMap = files
	out.readEndpoint = false
	return &out, nil
}

// passwordEnv gives the containers of a baseline's pod the password in their environment, as
// the hand-made setups read it (REDIS_PASSWORD), and to redis-cli (REDISCLI_AUTH): our release
// reads it from the Secret's files instead, and has none there. The exporter, which the lab
// measures nothing of, keeps its own.
func passwordEnv(spec *corev1.PodSpec) {
	ref := &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{Key: "password"}}
	for i := range spec.Containers {
		if spec.Containers[i].Name == "metrics" {
			continue
		}
		spec.Containers[i].Env = append(spec.Containers[i].Env,
			corev1.EnvVar{Name: "REDIS_PASSWORD", ValueFrom: ref}, corev1.EnvVar{Name: "REDISCLI_AUTH", ValueFrom: ref})
	}
}

// renderBaseline renders every file of the directory dir of baselineFiles (not those of its
// subdirectories) with data, into ConfigMap keys named like the files without ".tmpl".
func renderBaseline(dir string, data any) (map[string]string, error) {
	entries, err := baselineFiles.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	files := map[string]string{}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		t, err := template.ParseFS(baselineFiles, dir+"/"+e.Name())
		if err != nil {
			return nil, err
		}
		var b bytes.Buffer
		if err := t.Execute(&b, data); err != nil {
			return nil, err
		}
		files[strings.TrimSuffix(e.Name(), ".tmpl")] = b.String()
	}
	return files, nil
}

// configValue returns the integer that the line of config file name starting with key sets, as
// in "sentinel down-after-milliseconds mymaster 5000" or "min-replicas-max-lag 2".
func (r *workload) configValue(name string, key ...string) (int, error) {
	for _, line := range strings.Split(r.configMap[name], "\n") {
		f := strings.Fields(line)
		if len(f) > len(key) && slices.Equal(f[:len(key)], key) {
			return strconv.Atoi(f[len(f)-1])
		}
	}
	return 0, fmt.Errorf("lab: %s sets no %s", name, strings.Join(key, " "))
}

// limits reads the release's settings that the targets depend on.
func (r *release) limits() (limits, error) {
	downAfter, err := r.configValue("sentinel.conf", "sentinel", "down-after-milliseconds")
	if err != nil {
		return limits{}, err
	}
	maxLag, err := r.configValue("redis.conf", "min-replicas-max-lag")
	if err != nil {
		return limits{}, err
	}
	return limits{downAfter: time.Duration(downAfter) * time.Millisecond, maxLag: time.Duration(maxLag) * time.Second}, nil
}

// merge adds the entries of more to m, making m when it is nil.
func merge(m, more map[string]string) map[string]string {
	if m == nil {
		m = map[string]string{}
	}
	for k, v := range more {
		m[k] = v
	}
	return m
}
