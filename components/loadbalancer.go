package components

import "strconv"

// internalLoadBalancerAnnotations makes a LoadBalancer Service internal on each cloud that has a
// known way to do so. A cloud that is not in this table gets no LoadBalancer unless the user opts
// into a public one.
//
// EKS uses the AWS Load Balancer Controller's annotations: scheme "internal" with an NLB whose
// targets are pod IPs. They need the controller (the eks stack installs it); without it,
// AWSInTreeLoadBalancer switches to the in-tree annotations below. IP targets see the NLB's own
// address unless the target group preserves the client's, and the NetworkPolicy can only match
// clients by their own addresses: an NLB address would be one of the VPC, which every pod shares.
// The health check asks HAProxy's health port whether HAProxy runs (not whether a master is
// routable: a failover must not deregister every target); the default, a TCP connect to the
// Redis port from the NLB's addresses, would need that port open to the VPC.
var internalLoadBalancerAnnotations = map[Cloud]map[string]string{
	CloudGKE: {
		"networking.gke.io/load-balancer-type": "Internal",
	},
	CloudEKS: {
		"service.beta.kubernetes.io/aws-load-balancer-scheme":                  "internal",
		"service.beta.kubernetes.io/aws-load-balancer-type":                    "external",
		nlbTargetTypeAnnotation:                                                "ip",
		"service.beta.kubernetes.io/aws-load-balancer-target-group-attributes": "preserve_client_ip.enabled=true",
		"service.beta.kubernetes.io/aws-load-balancer-healthcheck-protocol":    "http",
		"service.beta.kubernetes.io/aws-load-balancer-healthcheck-port":        strconv.Itoa(haproxyHealthPort),
		"service.beta.kubernetes.io/aws-load-balancer-healthcheck-path":        haproxyHealthPath,
	},
	CloudAKS: {
		"service.beta.kubernetes.io/azure-load-balancer-internal": "true",
	},
}

// inTreeEKSAnnotations make an internal NLB through Kubernetes' in-tree AWS cloud provider, for
// clusters without the AWS Load Balancer Controller. Both sets describe the same thing: an
// internal network load balancer.
var inTreeEKSAnnotations = map[string]string{
	"service.beta.kubernetes.io/aws-load-balancer-internal": "true",
	"service.beta.kubernetes.io/aws-load-balancer-type":     "nlb",
}

// PublicLoadBalancerAnnotation marks a LoadBalancer Service that the user chose to make public,
// so that the choice is visible in the cluster and in every diff.
const PublicLoadBalancerAnnotation = "redis-sentinel.d3ad221e.github.io/public-load-balancer"

const nlbTargetTypeAnnotation = "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type"

// loadBalancerChecksPods says whether the load balancer health-checks the HAProxy pods themselves
// (an NLB with IP targets), rather than the nodes' health check port that kube-proxy serves for
// externalTrafficPolicy Local (GKE, AKS, the in-tree NLB).
func (a RedisSentinelArgs) loadBalancerChecksPods() bool {
	return a.LoadBalancer && a.loadBalancerAnnotations()[nlbTargetTypeAnnotation] == "ip"
}

// loadBalancerAnnotations returns the annotations of the LoadBalancer Service for these args.
func (a RedisSentinelArgs) loadBalancerAnnotations() map[string]string {
	if a.PublicLoadBalancer {
		return map[string]string{PublicLoadBalancerAnnotation: "true"}
	}
	internal := internalLoadBalancerAnnotations[a.Cloud]
	if a.AWSInTreeLoadBalancer {
		internal = inTreeEKSAnnotations
	}
	out := map[string]string{}
	for k, v := range internal {
		out[k] = v
	}
	return out
}
