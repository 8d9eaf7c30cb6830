package components

// internalLoadBalancerAnnotations makes a LoadBalancer Service internal on each cloud that has a
// known way to do so. A cloud that is not in this table gets no LoadBalancer unless the user opts
// into a public one.
//
// EKS uses the AWS Load Balancer Controller's annotations: scheme "internal" with an NLB whose
// targets are pod IPs. They need the controller (the eks stack installs it); without it,
// AWSInTreeLoadBalancer switches to the in-tree annotations below.
var internalLoadBalancerAnnotations = map[Cloud]map[string]string{
	CloudGKE: {
		"networking.gke.io/load-balancer-type": "Internal",
	},
	CloudEKS: {
		"service.beta.kubernetes.io/aws-load-balancer-scheme":          "internal",
		"service.beta.kubernetes.io/aws-load-balancer-type":            "external",
		"service.beta.kubernetes.io/aws-load-balancer-nlb-target-type": "ip",
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
