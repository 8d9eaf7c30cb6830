package tests

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/d3ad221e/redis-sentinel/components"
)

// invalidConfigs are stack configurations a user might write, each with the words its error must
// contain: the key, the value, and a hint of what is allowed.
var invalidConfigs = []struct {
	sentence  string
	overrides map[string]string
	want      []string
}{
	{"an even number of pods cannot hold a majority after one loss", map[string]string{"replicas": "2"}, []string{"replicas: 2", "odd number of at least 3"}},
	{"one pod is no high availability", map[string]string{"replicas": "1"}, []string{"replicas: 1", "odd"}},
	{"zero pods is not the default", map[string]string{"replicas": "0"}, []string{`replicas: "0"`, "at least 1"}},
	{"a negative pod count", map[string]string{"replicas": "-3"}, []string{`replicas: "-3"`}},
	{"a word where a number goes", map[string]string{"replicas": "three"}, []string{`replicas: "three"`, "whole number"}},
	{"an octal-looking count is not silently read as 8", map[string]string{"replicas": "0x3"}, []string{`replicas: "0x3"`}},
	{"a quorum below a majority", map[string]string{"quorum": "1"}, []string{"quorum: 1", "from 2 to 3"}},
	{"a quorum above the sentinel count", map[string]string{"quorum": "4"}, []string{"quorum: 4", "from 2 to 3"}},
	{"a negative quorum", map[string]string{"quorum": "-1"}, []string{`quorum: "-1"`}},
	{"a storage size that is not a quantity", map[string]string{"storageSize": "lots"}, []string{`storageSize: "lots"`, "quantity"}},
	{"a zero storage size", map[string]string{"storageSize": "0"}, []string{`storageSize: "0"`, "positive"}},
	{"a negative storage size", map[string]string{"storageSize": "-1Gi"}, []string{`storageSize: "-1Gi"`}},
	{"memory with a space and unit from another world", map[string]string{"redisMemory": "12 GB"}, []string{`redisMemory: "12 GB"`}},
	{"a CPU that is an adjective", map[string]string{"redisCPU": "fast"}, []string{`redisCPU: "fast"`}},
	{"a release name with capitals and underscores", map[string]string{"name": "Redis_Prod"}, []string{`name: "Redis_Prod"`, "DNS label"}},
	{"a release name too long for the derived names", map[string]string{"name": strings.Repeat("r", 53)}, []string{"name: \"rrrr", "at most 52"}},
	{"a namespace with a space", map[string]string{"namespace": "My Namespace"}, []string{`namespace: "My Namespace"`}},
	{"a master set name with a space", map[string]string{"masterSetName": "my master"}, []string{`masterSetName: "my master"`}},
	{"an unknown cloud", map[string]string{"cloud": "azure"}, []string{`cloud: "azure"`, "[none gke eks aks]"}},
	{"a LoadBalancer on a cloud with no internal annotation, without the opt-in", map[string]string{"loadBalancer": "true"}, []string{"loadBalancer: true", "publicLoadBalancer"}},
	{"a source range that is not a CIDR", map[string]string{"cloud": "gke", "loadBalancer": "true", "loadBalancerSourceRanges": `["10.0.0.0/33"]`}, []string{`loadBalancerSourceRanges[0]: "10.0.0.0/33"`}},
	{"a source range that is a host, not a network", map[string]string{"cloud": "gke", "loadBalancer": "true", "loadBalancerSourceRanges": `["10.1.2.3/8"]`}, []string{`loadBalancerSourceRanges[0]: "10.1.2.3/8"`, "10.0.0.0/8"}},
	{"the whole internet as a source range without the opt-in", map[string]string{"cloud": "eks", "loadBalancer": "true", "loadBalancerSourceRanges": `["10.0.0.0/8","0.0.0.0/0"]`}, []string{`loadBalancerSourceRanges[1]: "0.0.0.0/0"`}},
	{"source ranges that are not a list", map[string]string{"cloud": "gke", "loadBalancer": "true", "loadBalancerSourceRanges": "10.0.0.0/8"}, []string{`loadBalancerSourceRanges: "10.0.0.0/8"`, "list of CIDRs"}},
	{"source ranges without a load balancer", map[string]string{"loadBalancerSourceRanges": `["10.0.0.0/8"]`}, []string{"loadBalancerSourceRanges: [10.0.0.0/8]", "unless loadBalancer is true"}},
	{"an internal load balancer without source ranges would admit the whole network", map[string]string{"cloud": "aks", "loadBalancer": "true", "loadBalancerSourceRanges": "[]"}, []string{"loadBalancerSourceRanges: [] is not allowed", "at least one client CIDR when loadBalancer is true"}},
	{"a public load balancer without source ranges would admit the internet", map[string]string{"loadBalancer": "true", "publicLoadBalancer": "true"}, []string{"loadBalancerSourceRanges: [] is not allowed", `["0.0.0.0/0"]`}},
	{"a load balancer on a cluster whose own ranges are unknown", map[string]string{"cloud": "aks", "loadBalancer": "true", "loadBalancerSourceRanges": `["10.0.0.0/8"]`}, []string{"clusterNetworks: [] is not allowed", "pods and nodes"}},
	{"a source range that holds only the cluster's own pods", map[string]string{"cloud": "aks", "loadBalancer": "true", "loadBalancerSourceRanges": `["10.244.0.0/24"]`, "clusterNetworks": `["10.244.0.0/16"]`}, []string{`loadBalancerSourceRanges[0]: "10.244.0.0/24"`, "inside clusterNetworks entry 10.244.0.0/16"}},
	{"a cluster network that is a name", map[string]string{"clusterNetworks": `["pods"]`}, []string{`clusterNetworks[0]: "pods"`, "CIDR"}},
	{"cluster networks that are not a list", map[string]string{"clusterNetworks": "10.244.0.0/16"}, []string{`clusterNetworks: "10.244.0.0/16"`, "list of CIDRs"}},
	{"a spread that is a maybe", map[string]string{"spreadAcrossNodes": "mostly"}, []string{`spreadAcrossNodes: "mostly"`, "true or false"}},
	{"the public opt-in without a load balancer", map[string]string{"publicLoadBalancer": "true"}, []string{"publicLoadBalancer: true", "only together with loadBalancer"}},
	{"a negative down-after", map[string]string{"downAfterMilliseconds": "-5000"}, []string{`downAfterMilliseconds: "-5000"`}},
	{"a down-after so short that starting masters look dead", map[string]string{"downAfterMilliseconds": "500"}, []string{"downAfterMilliseconds: 500", "from 2000"}},
	{"a failover timeout shorter than down-after", map[string]string{"failoverTimeoutMilliseconds": "3000"}, []string{"failoverTimeoutMilliseconds: 3000", "downAfterMilliseconds (5000)"}},
	{"no lag bound", map[string]string{"minReplicasMaxLagSeconds": "0"}, []string{`minReplicasMaxLagSeconds: "0"`}},
	{"a lag bound of two minutes", map[string]string{"minReplicasMaxLagSeconds": "120"}, []string{"minReplicasMaxLagSeconds: 120", "from 1 to 60"}},
	{"no HAProxy pods", map[string]string{"haproxyReplicas": "0"}, []string{`haproxyReplicas: "0"`}},
	{"a boolean that is a maybe", map[string]string{"ephemeral": "maybe"}, []string{`ephemeral: "maybe"`, "true or false"}},
	{"a boolean that is a sentence", map[string]string{"createNamespace": "yes please"}, []string{`createNamespace: "yes please"`}},
	{"an image reference with a space", map[string]string{"redisImage": "redis latest"}, []string{`redisImage: "redis latest"`, "image reference"}},
	{"an empty HAProxy image", map[string]string{"haproxyImage": ""}, []string{`haproxyImage: ""`}},
	{"a password too short to be one", map[string]string{"password": "hunter2"}, []string{"password: \"(a secret of 7 characters)\"", "16 to 512"}},
	{"a password with a space breaks a config line", map[string]string{"password": "correct horse battery staple"}, []string{"password:", "without spaces"}},
	{"a previous password with a quote", map[string]string{"password": testPassword, "previousPassword": `say "cheese" 0123456789`}, []string{"previousPassword: \"(a secret of 23 characters)\"", "without spaces, quotes"}},
	{"a monitor password too short", map[string]string{"monitorPassword": "hunter2"}, []string{"monitorPassword: \"(a secret of 7 characters)\""}},
	{"a previous password without a password to rotate to", map[string]string{"previousPassword": testPassword}, []string{"previousPassword:", "only with password set"}},
	{"a rotation to the same password", map[string]string{"password": testPassword, "previousPassword": testPassword}, []string{"previousPassword: \"(the same secret as password)\""}},
	{"the monitor password is the clients'", map[string]string{"password": testPassword, "monitorPassword": testPassword}, []string{"monitorPassword:", "a password of its own"}},
	{"a client label key that Kubernetes refuses", map[string]string{"clientLabels": `{"bad key!": "x"}`}, []string{`clientLabels: "bad key!=x"`}},
	{"client labels that are not a map", map[string]string{"clientLabels": "redis-client"}, []string{`clientLabels: "redis-client"`, "map of label keys"}},
	{"no client labels at all", map[string]string{"clientLabels": "{}"}, []string{"clientLabels: map[]", "at least one label"}},
	{"a StorageClass name with capitals", map[string]string{"storageClass": "Fast_SSD"}, []string{`storageClass: "Fast_SSD"`}},
	{"a StorageClass for a pod with no claim", map[string]string{"ephemeral": "true", "storageClass": "ssd"}, []string{`storageClass: "ssd"`, "ephemeral is true"}},
	{"an empty namespace is not the default namespace", map[string]string{"namespace": ""}, []string{`namespace: ""`, "leave the key out for the default"}},
	{"an empty storage size", map[string]string{"storageSize": ""}, []string{`storageSize: ""`, "leave the key out"}},
	{"an empty cloud", map[string]string{"cloud": ""}, []string{`cloud: ""`}},
	{"a cluster domain with an empty label", map[string]string{"clusterDomain": "cluster..local"}, []string{`clusterDomain: "cluster..local"`}},
	{"metrics that are a maybe", map[string]string{"metrics": "sometimes"}, []string{`metrics: "sometimes"`, "true or false"}},
	{"a ServiceMonitor with nothing to scrape", map[string]string{"metrics": "false", "serviceMonitor": "true"}, []string{"serviceMonitor: true", "only together with metrics: true"}},
	{"an empty exporter image", map[string]string{"metricsImage": ""}, []string{`metricsImage: ""`, "leave the key out"}},
	{"an exporter image reference with a space", map[string]string{"metricsImage": "redis exporter"}, []string{`metricsImage: "redis exporter"`, "image reference"}},
	{"scrapers from every pod of the cluster", map[string]string{"metricsScraperNamespaceLabels": "{}", "metricsScraperPodLabels": "{}"}, []string{"metricsScraperPodLabels: map[]", "with both empty every pod"}},
	{"a scraper pod label key that Kubernetes refuses", map[string]string{"metricsScraperPodLabels": `{"bad key!": "x"}`}, []string{`metricsScraperPodLabels: "bad key!=x"`, "label keys and values"}},
	{"a scraper namespace label value that Kubernetes refuses", map[string]string{"metricsScraperNamespaceLabels": `{"team": "a b"}`}, []string{`metricsScraperNamespaceLabels: "team=a b"`}},
	{"a TLS secret named without TLS on", map[string]string{"tlsSecretName": "redis-certs"}, []string{`tlsSecretName: "redis-certs"`, "unless tls is true"}},
	{"an issuer kind without TLS on", map[string]string{"tlsIssuerKind": "ClusterIssuer"}, []string{`tlsIssuerKind: "ClusterIssuer"`, "unless tls is true"}},
	{"TLS names without TLS on", map[string]string{"tlsDnsNames": `["redis.example.internal"]`}, []string{"tlsDnsNames: [redis.example.internal]", "unless tls is true"}},
	{"a certificate from a Secret and an issuer at once", map[string]string{"tls": "true", "tlsSecretName": "redis-certs", "tlsIssuerName": "ca"}, []string{`tlsIssuerName: "ca"`, "not both"}},
	{"a TLS Secret name with capitals", map[string]string{"tls": "true", "tlsSecretName": "Redis_Certs"}, []string{`tlsSecretName: "Redis_Certs"`, "Secret name"}},
	{"an issuer kind cert-manager does not have", map[string]string{"tls": "true", "tlsIssuerName": "ca", "tlsIssuerKind": "Vault"}, []string{`tlsIssuerKind: "Vault"`, "[Issuer ClusterIssuer]"}},
	{"an issuer kind without an issuer", map[string]string{"tls": "true", "tlsIssuerKind": "Issuer"}, []string{`tlsIssuerKind: "Issuer"`, "together with tlsIssuerName"}},
	{"extra names for a certificate the user made", map[string]string{"tls": "true", "tlsSecretName": "redis-certs", "tlsDnsNames": `["redis.example.internal"]`}, []string{"tlsDnsNames: [redis.example.internal]", "that Secret's certificate decides"}},
	{"a certificate name with a space", map[string]string{"tls": "true", "tlsDnsNames": `["redis example"]`}, []string{`tlsDnsNames[0]: "redis example"`, "DNS name"}},
	{"TLS that is a maybe", map[string]string{"tls": "sometimes"}, []string{`tls: "sometimes"`, "true or false"}},
	{"scraper namespace labels that are a namespace name, not a map", map[string]string{"metricsScraperNamespaceLabels": "monitoring"}, []string{`metricsScraperNamespaceLabels: "monitoring"`, "map of namespace label keys"}},
}

func TestEveryInvalidConfigIsRefusedClearlyAndRegistersNothing(t *testing.T) {
	require.GreaterOrEqual(t, len(invalidConfigs), 25)
	for _, c := range invalidConfigs {
		t.Run(c.sentence, func(t *testing.T) {
			r, err := runStack(t, c.overrides, false)
			require.Error(t, err)
			for _, want := range c.want {
				assert.Contains(t, err.Error(), want)
			}
			assert.Empty(t, r.resources, "nothing may be registered when the config is invalid")
		})
	}
}

func TestEveryProblemIsReportedAtOnce(t *testing.T) {
	r, err := runStack(t, map[string]string{
		"replicas": "4", "cloud": "azure", "storageSize": "big", "downAfterMilliseconds": "-1", "ephemeral": "perhaps",
	}, false)
	require.Error(t, err)
	for _, key := range []string{"replicas: 4", `cloud: "azure"`, `storageSize: "big"`, `downAfterMilliseconds: "-1"`, `ephemeral: "perhaps"`} {
		assert.Contains(t, err.Error(), key)
	}
	assert.Empty(t, r.resources)
}

func TestTheComponentRefusesInvalidArgsBeforeRegisteringAnything(t *testing.T) {
	r, err := runComponent(t, &components.RedisSentinelArgs{Replicas: 4, Quorum: 9, DownAfterMilliseconds: -1, Cloud: "gcp"}, false)
	require.Error(t, err)
	var fieldErrors []string
	for _, line := range strings.Split(err.Error(), "\n") {
		fieldErrors = append(fieldErrors, strings.SplitN(line, ":", 2)[0])
	}
	assert.Equal(t, []string{"cloud", "replicas", "downAfterMilliseconds"}, fieldErrors,
		"quorum is judged only once replicas is valid")
	assert.Empty(t, r.resources)
}

// The component's own args are checked like the stack's keys: a load balancer needs the client
// ranges it admits, written out, the whole internet included.
func TestTheComponentRefusesALoadBalancerWithoutSourceRanges(t *testing.T) {
	for _, args := range []components.RedisSentinelArgs{
		{Cloud: components.CloudEKS, LoadBalancer: true},
		{Cloud: components.CloudNone, LoadBalancer: true, PublicLoadBalancer: true, LoadBalancerSourceRanges: []string{}},
	} {
		r, err := runComponent(t, &args, false)
		require.Error(t, err, "%+v", args)
		assert.Contains(t, err.Error(), "loadBalancerSourceRanges: [] is not allowed: at least one client CIDR when loadBalancer is true")
		assert.Empty(t, r.resources)
	}
	r, err := runComponent(t, &components.RedisSentinelArgs{
		LoadBalancer: true, PublicLoadBalancer: true, LoadBalancerSourceRanges: []string{"0.0.0.0/0"}, ClusterNetworks: []string{"10.244.0.0/16"},
	}, false)
	require.NoError(t, err, "the whole internet, written out, with the public opt-in")
	assert.Equal(t, []any{"0.0.0.0/0"}, path(r.object(typeService, "redis-master-lb"), "spec", "loadBalancerSourceRanges"))
}

// The NetworkPolicy admits the load balancer's clients by address; the component must know which
// addresses are the cluster's own, or it could not keep its pods from passing for clients.
func TestTheComponentNeedsTheClusterNetworksForALoadBalancer(t *testing.T) {
	args := components.RedisSentinelArgs{Cloud: components.CloudGKE, LoadBalancer: true, LoadBalancerSourceRanges: []string{"10.0.0.0/8"}}
	r, err := runComponent(t, &args, false)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "clusterNetworks: [] is not allowed")
	assert.Empty(t, r.resources)

	args.ClusterNetworks = []string{"10.20.0.0/14", "10.10.0.0/20", "192.168.0.0/24"}
	r, err = runComponent(t, &args, false)
	require.NoError(t, err)
	var policy networkingv1.NetworkPolicy
	r.decode(typeNetworkPolicy, "redis-haproxy", &policy)
	require.Len(t, policy.Spec.Ingress, 2)
	assert.Equal(t, []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{
		CIDR: "10.0.0.0/8", Except: []string{"10.20.0.0/14", "10.10.0.0/20"},
	}}}, policy.Spec.Ingress[1].From, "the cluster's own ranges inside a source range are left out; those outside it need nothing")
}

// clusterOnCloud turns the gke and eks stacks into cluster stacks: without the load balancer
// that their files set up for the Sentinel release's HAProxy, which a cluster refuses.
var clusterOnCloud = map[string]string{"topology": "cluster", "loadBalancer": "false", "loadBalancerSourceRanges": "[]"}

// invalidTopologyConfigs are mistakes in the choice of topology and in the keys of each: a key
// that only the other topology uses is refused, never ignored, with what to use instead.
var invalidTopologyConfigs = []invalidStackConfig{
	{"a topology that does not exist", "local", map[string]string{"topology": "sharded"}, []string{`topology: "sharded"`, "sentinel (one master, Sentinel, HAProxy) or cluster (sharded Redis Cluster)"}},
	{"an empty topology is not the default one", "local", map[string]string{"topology": ""}, []string{`topology: ""`, "leave the key out for the default"}},
	{"a cluster sized like a Sentinel release", "local-cluster", map[string]string{"replicas": "5"}, []string{"replicas: 5 is not allowed: its default (3) with topology cluster", "shards x (1 + replicasPerShard) pods; set those instead"}},
	{"a cluster with a quorum of sentinels", "local-cluster", map[string]string{"quorum": "2"}, []string{"quorum: 2 is not allowed: its default (0) with topology cluster", "no sentinels"}},
	{"a cluster with a master set name", "local-cluster", map[string]string{"masterSetName": "cache"}, []string{`masterSetName: "cache" is not allowed: its default (mymaster) with topology cluster`, "seedEndpoint or seedNodes"}},
	{"a cluster with an HAProxy image", "local-cluster", map[string]string{"haproxyImage": "docker.io/library/haproxy:2.8.11-alpine"}, []string{`haproxyImage: "docker.io/library/haproxy:2.8.11-alpine" is not allowed`, "a cluster has no HAProxy"}},
	{"a cluster with HAProxy pods", "local-cluster", map[string]string{"haproxyReplicas": "3"}, []string{"haproxyReplicas: 3 is not allowed: its default (2) with topology cluster", "a cluster has no HAProxy"}},
	{"a cluster timed like Sentinel", "local-cluster", map[string]string{"downAfterMilliseconds": "7000"}, []string{"downAfterMilliseconds: 7000 is not allowed", "set clusterNodeTimeoutMilliseconds instead"}},
	{"a cluster with a Sentinel failover timeout", "local-cluster", map[string]string{"failoverTimeoutMilliseconds": "20000"}, []string{"failoverTimeoutMilliseconds: 20000 is not allowed", "clusterNodeTimeoutMilliseconds"}},
	{"a cluster behind the gke stack's internal load balancer", "gke", map[string]string{"topology": "cluster"}, []string{"loadBalancer: true is not allowed: its default (false) with topology cluster: a cluster's clients must reach every node", "loadBalancerSourceRanges: [10.0.0.0/8] is not allowed"}},
	{"a cluster with the public load balancer opt-in", "local-cluster", map[string]string{"publicLoadBalancer": "true"}, []string{"publicLoadBalancer: true is not allowed", "must reach every node"}},
	{"a cluster with the ranges that only a load balancer needs", "local-cluster", map[string]string{"clusterNetworks": `["10.244.0.0/16"]`}, []string{"clusterNetworks: [10.244.0.0/16] is not allowed", "only tells the load balancer's clients from the cluster's pods"}},
	{"a cluster on an unknown cloud", "local-cluster", map[string]string{"cloud": "azure"}, []string{`cloud: "azure"`, "[none gke eks aks]"}},
	{"a Sentinel release with shards", "local", map[string]string{"shards": "6"}, []string{"shards: 6 is not allowed: its default (3) with topology sentinel", "a release with topology cluster"}},
	{"a Sentinel release with replicas per shard", "local", map[string]string{"replicasPerShard": "2"}, []string{"replicasPerShard: 2 is not allowed: its default (1) with topology sentinel", "with replicas instead"}},
	{"a Sentinel release with a cluster node timeout", "local", map[string]string{"clusterNodeTimeoutMilliseconds": "8000"}, []string{"clusterNodeTimeoutMilliseconds: 8000 is not allowed", "set downAfterMilliseconds instead"}},
	{"two shards leave no majority of masters", "local-cluster", map[string]string{"shards": "2"}, []string{"shards: 2 is not allowed: from 3 to 100"}},
	{"more shards than one release should hold", "local-cluster", map[string]string{"shards": "101"}, []string{"shards: 101 is not allowed: from 3 to 100"}},
	{"zero shards is not the default", "local-cluster", map[string]string{"shards": "0"}, []string{`shards: "0" is not allowed: a whole number of at least 1`}},
	{"shards that are a word", "local-cluster", map[string]string{"shards": "three"}, []string{`shards: "three"`, "whole number"}},
	{"a negative number of replicas per shard", "local-cluster", map[string]string{"replicasPerShard": "-1"}, []string{`replicasPerShard: "-1"`}},
	{"a shard with no replica loses its data with its pod", "local-cluster", map[string]string{"replicasPerShard": "0"}, []string{`replicasPerShard: "0"`, "at least 1"}},
	{"more copies than availability needs", "local-cluster", map[string]string{"replicasPerShard": "6"}, []string{"replicasPerShard: 6 is not allowed: from 1 to 5"}},
	{"a node timeout so short that restarting nodes look failed", "local-cluster", map[string]string{"clusterNodeTimeoutMilliseconds": "1000"}, []string{"clusterNodeTimeoutMilliseconds: 1000 is not allowed: from 2000 to 600000"}},
	{"a node timeout of more than ten minutes", "local-cluster", map[string]string{"clusterNodeTimeoutMilliseconds": "600001"}, []string{"clusterNodeTimeoutMilliseconds: 600001", "from 2000 to 600000"}},
	{"a node timeout with a unit", "local-cluster", map[string]string{"clusterNodeTimeoutMilliseconds": "5s"}, []string{`clusterNodeTimeoutMilliseconds: "5s"`, "whole number"}},
	{"a cluster's pods on the eks stack's three nodes", "eks", clusterOnCloud, []string{"eksMinNodes: 3 is not allowed: at least 6", "each of the shards (3) x (1 + replicasPerShard (1)) = 6 redis pods needs a node of its own"}},
	{"a larger cluster than the eks node group", "eks", mergeOverrides(clusterOnCloud, map[string]string{"shards": "4", "replicasPerShard": "2", "eksMinNodes": "6", "eksDesiredNodes": "6"}), []string{"eksMinNodes: 6 is not allowed: at least 12", "= 12 redis pods"}},
	{"a cluster larger than the gke node pool can grow", "gke", mergeOverrides(clusterOnCloud, map[string]string{"shards": "5"}), []string{"gkeMaxNodesPerZone: 3 is not allowed: at least 4 (10 nodes over 3 zones)", "shards (5) x (1 + replicasPerShard (1)) = 10 redis pods"}},
}

func TestEveryInvalidTopologyConfigIsRefusedClearlyAndRegistersNothing(t *testing.T) {
	require.GreaterOrEqual(t, len(invalidTopologyConfigs), 15)
	assertEveryConfigIsRefused(t, invalidTopologyConfigs)
}

// The keys that only a Sentinel release uses are reported together, and the ranges that the gke
// and eks stacks add to clusterNetworks are not the user's: they refuse nothing.
func TestAClusterStackReportsEverySentinelKeyAtOnce(t *testing.T) {
	r, err := runCloudStack(t, "local-cluster", map[string]string{
		"replicas": "5", "haproxyReplicas": "3", "loadBalancer": "true", "shards": "1",
	})
	require.Error(t, err)
	for _, key := range []string{"replicas: 5", "haproxyReplicas: 3", "loadBalancer: true", "shards: 1"} {
		assert.Contains(t, err.Error(), key)
	}
	assert.Empty(t, r.resources)

	for _, stack := range []string{"gke", "eks"} {
		overrides := clusterOnCloud
		if stack == "eks" {
			overrides = mergeOverrides(clusterOnCloud, map[string]string{"eksMinNodes": "6", "eksDesiredNodes": "6"})
		}
		r := mustRunCloudStack(t, stack, overrides)
		var sts appsv1.StatefulSet
		r.decode(typeStatefulSet, "redis", &sts)
		assert.Equal(t, int32(6), *sts.Spec.Replicas, "%s: a cluster of the default shape", stack)
	}
	mustRunCloudStack(t, "eks", mergeOverrides(clusterOnCloud, map[string]string{"spreadAcrossNodes": "false"}))
}
