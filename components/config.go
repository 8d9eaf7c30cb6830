package components

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"path"
	"sort"
	"text/template"
)

// Ports of the release. They are fixed: clients, probes and policies agree on them.
const (
	RedisPort = 6379
	// ReadPort is HAProxy's read endpoint: a replica in sync with the master (haproxy.cfg).
	ReadPort          = 6380
	SentinelPort      = 26379
	MetricsPort       = 9121 // redis_exporter's own default
	haproxyHealthPort = 8404
)

// haproxyHealthPath is haproxy.cfg's monitor-uri: 200 whenever HAProxy runs, whatever its backend
// (which /master reports). The readiness probe and the NLB's health check ask it, so that a master
// that is frozen or failing over never takes every HAProxy pod out of the Service, or every target
// out of the NLB, which would take 30 s or more to register them again.
const haproxyHealthPath = "/healthz"

// haproxyConnections is what all HAProxy pods together may hold open to the master: below
// redis's default maxclients (10000), leaving room for replicas, sentinels and direct clients.
const haproxyConnections = 8000

// Where the containers find the ConfigMap and the Secret (read-only) and where they write the
// configs that redis and sentinel own at run time (an emptyDir: Sentinel rewrites its config and
// exits if it cannot).
const (
	templateDir = "/etc/redis-sentinel"
	authDir     = "/etc/redis-sentinel-auth"
	runDir      = "/run/redis-sentinel"
	dataDir     = "/data" // redis's dir: the volume claim, or an emptyDir when ephemeral
	haproxyDir  = "/usr/local/etc/haproxy"
)

//go:embed templates/*.tmpl
var templateFiles embed.FS

//go:embed scripts/*.sh
var scriptFiles embed.FS

var templates = template.Must(template.New("").Option("missingkey=error").ParseFS(templateFiles, "templates/*.tmpl"))

// names holds every Kubernetes name derived from the component's name, so that DNS names and
// diffs stay stable. config and haproxyConfig are prefixes: the ConfigMaps' names end in a digest
// of their content (contentName).
type names struct {
	base, secret, config, haproxyConfig, serviceAccount, headless, sentinel, master, loadBalancer,
	haproxy, networkPolicy, haproxyNetworkPolicy, disruptionBudget, haproxyDisruptionBudget,
	serviceMonitor, topology, tls string
}

func newNames(base string) names {
	return names{
		base:                    base,
		secret:                  base + "-auth",
		config:                  base + "-config",
		haproxyConfig:           base + "-haproxy-config",
		serviceAccount:          base,
		headless:                base + "-headless",
		sentinel:                base + "-sentinel",
		master:                  base + "-master",
		loadBalancer:            base + "-master-lb",
		haproxy:                 base + "-haproxy",
		networkPolicy:           base,
		haproxyNetworkPolicy:    base + "-haproxy",
		disruptionBudget:        base,
		haproxyDisruptionBudget: base + "-haproxy",
		serviceMonitor:          base,
		topology:                base + "-topology",
		tls:                     base + "-tls",
	}
}

// peerDomain is the DNS domain of the headless Service, under which every pod has a stable name.
func peerDomain(n names, a ReleaseArgs) string {
	return fmt.Sprintf("%s.%s.svc.%s", n.headless, a.Namespace, a.ClusterDomain)
}

// serviceHost is the in-cluster DNS name of one of the release's Services.
func serviceHost(service string, a ReleaseArgs) string {
	return fmt.Sprintf("%s.%s.svc.%s", service, a.Namespace, a.ClusterDomain)
}

type pod struct{ ID, FQDN string }

type templateValues struct {
	Name                        string
	RedisPort, SentinelPort     int
	ReadPort                    int
	HealthPort                  int
	Ephemeral                   bool
	MinReplicasMaxLagSeconds    int
	DataDir                     string
	ShutdownTimeoutSeconds      int
	MasterSetName               string
	DefaultMaster               string
	Quorum                      int
	DownAfterMilliseconds       int
	FailoverTimeoutMilliseconds int
	MaxMemoryBytes              int64
	HAProxyMaxConn              int
	CheckInterval               string
	Pods                        []pod
	// TLSDir is where the certificate is mounted, with TLS; empty without.
	TLSDir string
	// RedisCluster only.
	BusPort                 int
	NodeTimeoutMilliseconds int
}

// haproxyCheckInterval is how often HAProxy asks every server for its role and every sentinel for
// the master. After a failover HAProxy routes again within one interval of the sentinels' switch;
// at 1s the failover lab measured up to a second more without writes than at 250ms. The cost is
// 4 checks per pod per interval and HAProxy replica, each a short-lived connection.
const haproxyCheckInterval = "250ms"

// ConfigMap keys. The redis pods use everything but haproxy.cfg; HAProxy uses only haproxy.cfg.
// Each has its ConfigMap (see splitConfigFiles).
const haproxyConfigKey = "haproxy.cfg"

// renderConfigFiles returns a RedisSentinel's ConfigMaps' data: the rendered redis.conf,
// sentinel.conf and haproxy.cfg, and the scripts as they are. It is a pure function of its arguments.
func renderConfigFiles(n names, a RedisSentinelArgs) (map[string]string, error) {
	values := templateValues{
		Name:                        n.base,
		RedisPort:                   RedisPort,
		SentinelPort:                SentinelPort,
		ReadPort:                    ReadPort,
		HealthPort:                  haproxyHealthPort,
		Ephemeral:                   a.Ephemeral,
		MinReplicasMaxLagSeconds:    a.MinReplicasMaxLagSeconds,
		DataDir:                     dataDir,
		ShutdownTimeoutSeconds:      shutdownTimeoutSeconds,
		MasterSetName:               a.MasterSetName,
		Quorum:                      a.Quorum,
		DownAfterMilliseconds:       a.DownAfterMilliseconds,
		FailoverTimeoutMilliseconds: a.FailoverTimeoutMilliseconds,
		CheckInterval:               haproxyCheckInterval,
		TLSDir:                      tlsDirOf(a.ReleaseArgs),
	}
	values.HAProxyMaxConn = haproxyConnections / a.HAProxyReplicas
	memory := mustQuantity(a.RedisMemory)
	values.MaxMemoryBytes = memory.Value() * 3 / 4
	for i := 0; i < a.Replicas; i++ {
		id := fmt.Sprintf("%s-%d", n.base, i)
		values.Pods = append(values.Pods, pod{ID: id, FQDN: id + "." + peerDomain(n, a.ReleaseArgs)})
	}
	values.DefaultMaster = values.Pods[0].FQDN

	return renderFiles(sentinelFiles, values)
}

// tlsDirOf is the templates' TLSDir: tlsDir with TLS, else empty.
func tlsDirOf(r ReleaseArgs) string {
	if r.TLS.Enabled {
		return tlsDir
	}
	return ""
}

// The files of each kind of release's ConfigMaps: a template's output (templates/NAME.tmpl) or a
// script (scripts/NAME), under NAME.
var (
	sentinelFiles = []string{"redis.conf", "sentinel.conf", haproxyConfigKey, "common.sh", "lib.sh", "redis-start.sh", "sentinel-start.sh", "redis-prestop.sh", "probe.sh", "credentials.sh"}
	clusterFiles  = []string{"cluster.conf", "common.sh", "cluster-lib.sh", "cluster-start.sh", "cluster-prestop.sh", "cluster-probe.sh", "cluster-reshard.sh", "credentials.sh"}
)

// renderFiles renders or reads every file of names. It is a pure function of its arguments.
func renderFiles(names []string, values templateValues) (map[string]string, error) {
	files := map[string]string{}
	for _, name := range names {
		if t := templates.Lookup(name + ".tmpl"); t != nil {
			var out bytes.Buffer
			if err := t.Execute(&out, values); err != nil {
				return nil, fmt.Errorf("render %s: %w", t.Name(), err)
			}
			files[name] = out.String()
			continue
		}
		body, err := scriptFiles.ReadFile(path.Join("scripts", name))
		if err != nil {
			return nil, err
		}
		files[name] = string(body)
	}
	return files, nil
}

// splitConfigFiles separates what the redis pods mount from what HAProxy mounts: each gets a
// ConfigMap of its own, so that a change of one rolls only the pods that read it.
func splitConfigFiles(files map[string]string) (redis, haproxy map[string]string) {
	redis, haproxy = map[string]string{}, map[string]string{}
	for key, body := range files {
		if key == haproxyConfigKey {
			haproxy[key] = body
		} else {
			redis[key] = body
		}
	}
	return redis, haproxy
}

// contentName is prefix plus a digest of files. A ConfigMap named so is never changed: new
// content is a new object, the pods roll onto it (their template names it), and Pulumi deletes
// the old one only after the rollout, so no running pod loses the files it mounts. A fixed name
// would make the kubernetes provider replace the object in place, delete first.
func contentName(prefix string, files map[string]string) string {
	h := sha256.New()
	for _, key := range sortedKeys(files) {
		fmt.Fprintf(h, "%s\x00%s\x00", key, files[key])
	}
	return prefix + "-" + hex.EncodeToString(h.Sum(nil))[:contentDigestLength]
}

// contentDigestLength hex digits (40 bits) tell one release's configs apart; kustomize's
// generators use the same length.
const contentDigestLength = 10

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
