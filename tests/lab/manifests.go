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
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// release is what the lab runs of a render: the redis StatefulSet, the HAProxy Deployment, the
// files of the ConfigMaps they mount and the names clients use.
type release struct {
	statefulSet   appsv1.StatefulSet
	haproxy       appsv1.Deployment
	configMap     map[string]string // the keys of every ConfigMap
	headless      string            // the headless Service (pods' DNS subdomain)
	masterService string            // the Service in front of HAProxy
	// sentinelService is the ClusterIP Service of the sentinels (the real node's test watches it).
	sentinelService string
	namespace       string
}

// renderStack renders a stack exactly as `cmd/render -stack NAME` does, in memory.
func renderStack(repoRoot, stack string) (map[string][]byte, error) {
	cfg, err := render.LoadStackConfig(repoRoot, stack)
	if err != nil {
		return nil, err
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

// parseRelease picks out of rendered files the objects the lab runs.
func parseRelease(files map[string][]byte) (*release, error) {
	var rel release
	var haveSTS, haveHAProxy bool
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
			err, haveSTS = yaml.UnmarshalStrict(body, &rel.statefulSet), true
		case "Deployment":
			err, haveHAProxy = yaml.UnmarshalStrict(body, &rel.haproxy), true
		case "ConfigMap":
			// The redis pods' and HAProxy's ConfigMaps have distinct keys: one map serves both.
			var cm corev1.ConfigMap
			if err = yaml.UnmarshalStrict(body, &cm); err == nil {
				rel.configMap = merge(rel.configMap, cm.Data)
			}
		case "Service":
			var svc corev1.Service
			if err = yaml.UnmarshalStrict(body, &svc); err != nil {
				break
			}
			switch {
			case svc.Spec.ClusterIP == corev1.ClusterIPNone:
				rel.headless = svc.Name
			case svc.Spec.Selector["app.kubernetes.io/component"] == "haproxy":
				rel.masterService = svc.Name
			case len(svc.Spec.Ports) == 1 && svc.Spec.Ports[0].Name == "sentinel":
				rel.sentinelService = svc.Name
			}
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %v", name, err)
		}
	}
	if !haveSTS || !haveHAProxy || rel.configMap == nil || rel.headless == "" || rel.masterService == "" || rel.sentinelService == "" {
		return nil, fmt.Errorf("lab: the render lacks the StatefulSet, the HAProxy Deployment, the ConfigMap or a Service")
	}
	rel.namespace = rel.statefulSet.Namespace
	return &rel, nil
}

// env returns a value the redis container's environment sets literally.
func (r *release) env(name string) string {
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
	return clientConfig{
		MasterService: fmt.Sprintf("%s.%s.svc.cluster.local", r.masterService, r.namespace),
		Pods:          pods, PodDomain: r.podDomain(), MasterSet: r.env("MASTER_SET"),
		RedisPort: redisPort, SentinelPort: sentinelPort, HealthPort: r.healthPort(),
		WriteInterval: Duration(writeInterval), SampleInterval: Duration(sampleInterval),
	}
}

// healthPort is the port of HAProxy's health check.
func (r *release) healthPort() int {
	for _, p := range r.haproxy.Spec.Template.Spec.Containers[0].Ports {
		if p.Name == "health" {
			return int(p.ContainerPort)
		}
	}
	return 0
}

func (r *release) replicas() int { return int(*r.statefulSet.Spec.Replicas) }

func (r *release) podDomain() string {
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

// asBaseline returns a copy of the release with the baseline's files and no preStop.
func (r *release) asBaseline() (*release, error) {
	out := *r
	out.statefulSet = *r.statefulSet.DeepCopy()
	spec := &out.statefulSet.Spec.Template.Spec
	for i := range spec.Containers {
		spec.Containers[i].Lifecycle = nil
	}
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
	entries, err := baselineFiles.ReadDir("baseline")
	if err != nil {
		return nil, err
	}
	out.configMap = map[string]string{}
	for _, e := range entries {
		t, err := template.ParseFS(baselineFiles, "baseline/"+e.Name())
		if err != nil {
			return nil, err
		}
		var b bytes.Buffer
		if err := t.Execute(&b, data); err != nil {
			return nil, err
		}
		out.configMap[strings.TrimSuffix(e.Name(), ".tmpl")] = b.String()
	}
	return &out, nil
}

// configValue returns the integer that the line of config file name starting with key sets, as
// in "sentinel down-after-milliseconds mymaster 5000" or "min-replicas-max-lag 2".
func (r *release) configValue(name string, key ...string) (int, error) {
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
