package tests

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/d3ad221e/redis-sentinel/components"
	"github.com/d3ad221e/redis-sentinel/internal/render"
)

// container returns the container of that name; the test fails without one.
func container(t *testing.T, spec corev1.PodSpec, name string) corev1.Container {
	t.Helper()
	for _, c := range spec.Containers {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no container %s", name)
	return corev1.Container{}
}

func TestTheExporterReadsOnlyItsOwnRedisWithThePasswordFromTheSecret(t *testing.T) {
	r := mustRunStack(t, nil)
	var sts appsv1.StatefulSet
	r.decode(typeStatefulSet, "redis", &sts)
	exporter := container(t, sts.Spec.Template.Spec, "metrics")

	assert.Equal(t, components.DefaultMetricsImage, exporter.Image)
	assert.Regexp(t, `:v1\.(8[3-9]|9[0-9])\.[0-9]+$`, components.DefaultMetricsImage, "v1.83.0 or later: older ones ignore the /scrape switch")
	assert.Equal(t, []string{"/redis_exporter"}, exporter.Command, "explicit, so that another packaging's binary can take its place")
	assert.Equal(t, []string{"--redis.addr=redis://localhost:6379", "--web.listen-address=:9121"}, exporter.Args)
	assert.Equal(t, []corev1.ContainerPort{{Name: "metrics", ContainerPort: components.MetricsPort, Protocol: corev1.ProtocolTCP}}, exporter.Ports)

	require.Len(t, exporter.Env, 3)
	assert.Equal(t, corev1.EnvVar{Name: "REDIS_USER", Value: "monitor"}, exporter.Env[0], "the low-privilege user, never the clients' password")
	password := exporter.Env[1]
	assert.Equal(t, "REDIS_PASSWORD", password.Name, "the variable redis_exporter reads")
	require.NotNil(t, password.ValueFrom)
	require.NotNil(t, password.ValueFrom.SecretKeyRef, "from the Secret, never a literal")
	assert.Equal(t, "redis-auth", password.ValueFrom.SecretKeyRef.Name)
	assert.Equal(t, "monitor-password", password.ValueFrom.SecretKeyRef.Key)
	assert.Equal(t, corev1.EnvVar{Name: "REDIS_EXPORTER_DISABLE_SCRAPE_ENDPOINT", Value: "true"}, exporter.Env[2],
		"/scrape would send the password to any address a caller names")
	for _, arg := range exporter.Args {
		assert.NotContains(t, arg, "password")
	}

	require.NotNil(t, exporter.LivenessProbe)
	require.NotNil(t, exporter.LivenessProbe.HTTPGet)
	assert.Equal(t, "/health", exporter.LivenessProbe.HTTPGet.Path)
	assert.Equal(t, "metrics", exporter.LivenessProbe.HTTPGet.Port.String())
	assert.Nil(t, exporter.ReadinessProbe, "the pod's readiness is redis's alone")
	assert.False(t, exporter.Resources.Requests.Cpu().IsZero())
	assert.False(t, exporter.Resources.Limits.Memory().IsZero())
	assert.Empty(t, exporter.VolumeMounts, "it reads nothing from disk")
}

func TestWithoutMetricsThereIsNoExporterNoPortAndNoServiceMonitor(t *testing.T) {
	on := mustRunStack(t, nil)
	off := mustRunStack(t, map[string]string{"metrics": "false"})

	var sts appsv1.StatefulSet
	off.decode(typeStatefulSet, "redis", &sts)
	var names []string
	for _, c := range sts.Spec.Template.Spec.Containers {
		names = append(names, c.Name)
	}
	assert.Equal(t, []string{"redis", "sentinel"}, names)
	assert.Empty(t, off.ofType(typeMonitor))

	var headless corev1.Service
	off.decode(typeService, "redis-headless", &headless)
	var ports []string
	for _, p := range headless.Spec.Ports {
		ports = append(ports, p.Name)
	}
	assert.Equal(t, []string{"redis", "sentinel"}, ports)

	var withMetrics, without networkingv1.NetworkPolicy
	on.decode(typeNetworkPolicy, "redis", &withMetrics)
	off.decode(typeNetworkPolicy, "redis", &without)
	require.Len(t, withMetrics.Spec.Ingress, 2)
	assert.Equal(t, withMetrics.Spec.Ingress[:1], without.Spec.Ingress, "the policy is the one without metrics, plus the scraper's rule")

	for _, res := range off.resources {
		assert.NotContains(t, rendered(t, res, false), "9121", "%s %s", res.Type, res.Name)
	}
	// The search above can fail: with metrics, the port is there.
	assert.Contains(t, rendered(t, on.find(typeStatefulSet, "redis"), false), "9121")
}

func TestScrapersReachTheMetricsPortAndNothingElse(t *testing.T) {
	for _, c := range []struct {
		sentence        string
		overrides       map[string]string
		namespace, pods map[string]string
	}{
		{"the default: Prometheus in namespace monitoring", nil,
			map[string]string{"kubernetes.io/metadata.name": "monitoring"}, map[string]string{"app.kubernetes.io/name": "prometheus"}},
		{"a scraper in any namespace", map[string]string{"metricsScraperNamespaceLabels": "{}", "metricsScraperPodLabels": `{"app": "vmagent"}`},
			map[string]string{}, map[string]string{"app": "vmagent"}},
	} {
		t.Run(c.sentence, func(t *testing.T) {
			r := mustRunStack(t, c.overrides)
			var policy networkingv1.NetworkPolicy
			r.decode(typeNetworkPolicy, "redis", &policy)
			require.Len(t, policy.Spec.Ingress, 2)
			scrape := policy.Spec.Ingress[1]
			require.Len(t, scrape.Ports, 1)
			assert.Equal(t, components.MetricsPort, scrape.Ports[0].Port.IntValue(), "the metrics port only")
			require.Len(t, scrape.From, 1, "one peer: both selectors must hold at once")
			peer := scrape.From[0]
			require.NotNil(t, peer.NamespaceSelector)
			require.NotNil(t, peer.PodSelector)
			assert.Equal(t, c.namespace, peer.NamespaceSelector.MatchLabels)
			assert.Equal(t, c.pods, peer.PodSelector.MatchLabels)

			for _, from := range policy.Spec.Ingress[0].From {
				assert.NotEqual(t, c.pods, from.PodSelector.MatchLabels, "the scraper does not reach redis or the sentinels")
			}
			assert.NotContains(t, rendered(t, r.find(typeNetworkPolicy, "redis-haproxy"), false), "9121", "HAProxy has no exporter")
		})
	}
}

// The ServiceMonitor must find the exporters: its selector picks the Services by label, and of
// those it scrapes the port of that name, on the pods behind them.
func TestTheServiceMonitorFindsEveryExporterThroughTheHeadlessService(t *testing.T) {
	r := mustRunStack(t, map[string]string{"serviceMonitor": "true"})
	monitor := r.find(typeMonitor, "redis")
	assert.Equal(t, typeComponent+"::redis", monitor.Parent)
	obj := render.Object(monitor, false)
	assert.Equal(t, "monitoring.coreos.com/v1", obj["apiVersion"])
	assert.Equal(t, "ServiceMonitor", obj["kind"])
	assert.Equal(t, "redis", obj["metadata"].(map[string]any)["namespace"], "beside the Services it selects")
	spec := obj["spec"].(map[string]any)
	selector := labels.Set{}
	for k, v := range spec["selector"].(map[string]any)["matchLabels"].(map[string]any) {
		selector[k] = v.(string)
	}
	require.NotEmpty(t, selector)
	endpoints := spec["endpoints"].([]any)
	require.Len(t, endpoints, 1)
	port := endpoints[0].(map[string]any)["port"]
	assert.Equal(t, "metrics", port)

	var scraped []string
	var podSelector map[string]string
	for _, res := range r.ofType(typeService) {
		var svc corev1.Service
		r.decode(typeService, res.Name, &svc)
		if !labels.SelectorFromSet(selector).Matches(labels.Set(svc.Labels)) {
			continue
		}
		for _, p := range svc.Spec.Ports {
			if p.Name == port {
				scraped = append(scraped, svc.Name)
				assert.Equal(t, components.MetricsPort, p.TargetPort.IntValue())
				podSelector = svc.Spec.Selector
			}
		}
	}
	assert.Equal(t, []string{"redis-headless"}, scraped, "one Service, so every pod is scraped once")

	var sts appsv1.StatefulSet
	r.decode(typeStatefulSet, "redis", &sts)
	assert.True(t, labels.SelectorFromSet(podSelector).Matches(labels.Set(sts.Spec.Template.Labels)), "the Service leads to the redis pods")
	exporter := container(t, sts.Spec.Template.Spec, "metrics")
	assert.Equal(t, components.MetricsPort, int(exporter.Ports[0].ContainerPort))

	var master corev1.Service
	r.decode(typeService, "redis-master", &master)
	assert.False(t, labels.SelectorFromSet(selector).Matches(labels.Set(master.Labels)), "negative control: not HAProxy's Service")
}

func TestTheServiceMonitorIsRenderedAsItsOwnManifest(t *testing.T) {
	r := mustRunStack(t, map[string]string{"serviceMonitor": "true"})
	files, err := render.Manifests(r.resources, false)
	require.NoError(t, err)
	body, ok := files["servicemonitor-redis.yaml"]
	require.True(t, ok, "kind and name, like every other manifest")
	text := string(body)
	assert.True(t, strings.HasPrefix(text, "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\n"), text)
	assert.Contains(t, text, "\nspec:\n  endpoints:\n  - path: /metrics\n    port: metrics\n", "spec is a field of the object, not nested in another")
	assert.Contains(t, string(files[render.PlanFile]), `"type": "kubernetes:monitoring.coreos.com/v1:ServiceMonitor"`)

	without, err := render.Manifests(mustRunStack(t, nil).resources, false)
	require.NoError(t, err)
	assert.NotContains(t, without, "servicemonitor-redis.yaml", "off by default: the CRD may not exist")
}
