package shop

import (
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// connectToMainStack reads the outputs of a stack of the redis-sentinel program (stacks/run.go
// exports them) and hands them to the shop's app pods as a ConfigMap. The password stays in
// that release's Secret (secretName, in its namespace); pods mount it from there. The ConfigMap
// goes into the shop's namespace, which the cache creates, so it waits for the cache.
func connectToMainStack(ctx *pulumi.Context, stack string, cache pulumi.Resource) error {
	ref, err := pulumi.NewStackReference(ctx, stack, nil)
	if err != nil {
		return err
	}
	output := func(name string) pulumi.StringOutput {
		return ref.GetStringOutput(pulumi.String(name))
	}
	settings, err := corev1.NewConfigMap(ctx, "shared-redis", &corev1.ConfigMapArgs{
		Metadata: &metav1.ObjectMetaArgs{
			Name:      pulumi.String("shared-redis"),
			Namespace: pulumi.String(namespace),
		},
		Data: pulumi.StringMap{
			"REDIS_MASTER":           output("masterEndpoint"),
			"REDIS_SENTINELS":        output("sentinelEndpoint"),
			"REDIS_MASTER_SET":       output("masterSetName"),
			"REDIS_SECRET":           output("secretName"),
			"REDIS_SECRET_NAMESPACE": output("namespace"),
		},
	}, pulumi.DependsOn([]pulumi.Resource{cache}))
	if err != nil {
		return err
	}
	ctx.Export("sharedRedisMaster", output("masterEndpoint"))
	ctx.Export("sharedRedisSettings", settings.Metadata.Name())
	return nil
}
