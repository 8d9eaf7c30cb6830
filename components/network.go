package components

import (
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	networkingv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/networking/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// metricsPortName names the exporters' port on the pods and the headless Service; the
// ServiceMonitor finds the port by this name.
const metricsPortName = "metrics"

func servicePort(name string, port int) corev1.ServicePortArgs {
	return corev1.ServicePortArgs{
		Name: pulumi.String(name), Port: pulumi.Int(port), TargetPort: pulumi.Int(port), Protocol: pulumi.String("TCP"),
	}
}

// haproxyServicePorts are the ports of the Services in front of HAProxy: the master endpoint
// and the read endpoint.
func haproxyServicePorts() corev1.ServicePortArray {
	return corev1.ServicePortArray{servicePort("redis", RedisPort), servicePort("redis-read", ReadPort)}
}

// services registers the headless Service (stable pod DNS names), the sentinels' Service and the
// master endpoint Service in front of HAProxy.
func (b *sentinelBuilder) services() error {
	n := b.names
	if err := b.headlessService(servicePort("redis", RedisPort), servicePort("sentinel", SentinelPort)); err != nil {
		return err
	}
	if err := b.service(n.sentinel, componentRedis, &corev1.ServiceSpecArgs{
		Type: pulumi.String("ClusterIP"),
		// A pod is ready when its redis container is: a replica that is resyncing, or whose
		// redis restarts, is not ready while its sentinel works and votes. Without this, such
		// a pod took its sentinel out of the Service, and clients had fewer sentinels to ask
		// exactly when they needed them. Listing a sentinel that does not answer yet costs
		// little: Sentinel clients try the next address.
		PublishNotReadyAddresses: pulumi.Bool(true),
		Selector:                 b.selector(componentRedis),
		Ports:                    corev1.ServicePortArray{servicePort("sentinel", SentinelPort)},
	}); err != nil {
		return err
	}
	return b.service(n.master, componentHAProxy, &corev1.ServiceSpecArgs{
		Type:     pulumi.String("ClusterIP"),
		Selector: b.selector(componentHAProxy),
		Ports:    haproxyServicePorts(),
	})
}

// loadBalancer registers the LoadBalancer Service when asked for, and returns its address
// (empty until the cloud assigns one, and without a load balancer).
func (b *sentinelBuilder) loadBalancer() (pulumi.StringOutput, error) {
	a, n := b.args, b.names
	if !a.LoadBalancer {
		return pulumi.String("").ToStringOutput(), nil
	}
	meta := b.meta(n.loadBalancer, b.labels(componentHAProxy))
	meta.Annotations = pulumi.ToStringMap(a.loadBalancerAnnotations())
	spec := &corev1.ServiceSpecArgs{
		Type: pulumi.String("LoadBalancer"),
		// Local keeps the client's address, which the NetworkPolicy's source ranges match.
		ExternalTrafficPolicy:    pulumi.String("Local"),
		Selector:                 b.selector(componentHAProxy),
		Ports:                    haproxyServicePorts(),
		LoadBalancerSourceRanges: pulumi.ToStringArray(a.LoadBalancerSourceRanges),
	}
	service, err := corev1.NewService(b.ctx, n.loadBalancer, &corev1.ServiceArgs{Metadata: meta, Spec: spec}, b.opts...)
	if err != nil {
		return pulumi.StringOutput{}, err
	}
	if a.PublicLoadBalancer {
		if err := b.warnPublic(service); err != nil {
			return pulumi.StringOutput{}, err
		}
	}
	address := service.Status.LoadBalancer().Ingress().ApplyT(func(ingress []corev1.LoadBalancerIngress) string {
		if len(ingress) == 0 {
			return ""
		}
		if ingress[0].Ip != nil {
			return *ingress[0].Ip
		}
		if ingress[0].Hostname != nil {
			return *ingress[0].Hostname
		}
		return ""
	}).(pulumi.StringOutput)
	return address, nil
}

// policies registers the PodDisruptionBudgets (one pod of each component down at a time) and the
// NetworkPolicies: redis and sentinel ports only from peers, HAProxy, the credentials Job and
// labelled clients; HAProxy only from labelled clients and, with a load balancer, from its
// source ranges.
func (b *sentinelBuilder) policies() error {
	a, n := b.args, b.names
	for _, budget := range []struct{ name, component string }{
		{n.disruptionBudget, componentRedis},
		{n.haproxyDisruptionBudget, componentHAProxy},
	} {
		if err := b.disruptionBudget(budget.name, budget.component); err != nil {
			return err
		}
	}
	clients := b.clientsPeer()
	haproxyRules := networkingv1.NetworkPolicyIngressRuleArray{
		networkingv1.NetworkPolicyIngressRuleArgs{From: networkingv1.NetworkPolicyPeerArray{clients}, Ports: policyPorts(RedisPort, ReadPort)},
	}
	if a.LoadBalancer {
		// Never empty (Validate): a rule without peers would admit every source. The cluster's
		// own ranges are cut out of each range: its pods have addresses there too (on EKS and
		// with Azure CNI, addresses of the very subnets that clients use), and they are clients
		// only with the labels.
		var from networkingv1.NetworkPolicyPeerArray
		for _, cidr := range a.LoadBalancerSourceRanges {
			var except []string
			for _, own := range a.ClusterNetworks {
				if cidrInside(own, cidr) {
					except = append(except, own)
				}
			}
			from = append(from, networkingv1.NetworkPolicyPeerArgs{IpBlock: &networkingv1.IPBlockArgs{
				Cidr: pulumi.String(cidr), Except: pulumi.ToStringArray(except),
			}})
		}
		haproxyRules = append(haproxyRules, networkingv1.NetworkPolicyIngressRuleArgs{From: from, Ports: policyPorts(RedisPort, ReadPort)})
	}
	if a.loadBalancerChecksPods() {
		// The load balancer's health checks come from its own addresses, inside the cluster's
		// network, to every HAProxy pod: open the health port to every source. It answers
		// whether this HAProxy runs and whether it routes to a master; the Redis ports stay closed.
		haproxyRules = append(haproxyRules, networkingv1.NetworkPolicyIngressRuleArgs{Ports: policyPorts(haproxyHealthPort)})
	}

	redisRules := networkingv1.NetworkPolicyIngressRuleArray{
		networkingv1.NetworkPolicyIngressRuleArgs{
			From: networkingv1.NetworkPolicyPeerArray{
				podsPeer(b.selector(componentRedis)), podsPeer(b.selector(componentHAProxy)), podsPeer(b.selector(componentCredentials)), clients,
			},
			Ports: policyPorts(RedisPort, SentinelPort),
		},
	}
	if rule := b.scraperRule(); rule != nil {
		redisRules = append(redisRules, rule)
	}

	if err := b.networkPolicy(n.networkPolicy, componentRedis, redisRules); err != nil {
		return err
	}
	return b.networkPolicy(n.haproxyNetworkPolicy, componentHAProxy, haproxyRules)
}
