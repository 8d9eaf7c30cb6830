package shop

import (
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// connectToMainStack reads the outputs of a stack of the redis-sentinel program (stacks/run.go
// exports them) and hands them to the shop's app pods: the endpoints in a ConfigMap, the password
// in a Secret. A pod can only mount, or read into its environment, a Secret of its own namespace,
// so the password of that release's Secret (secretName, in its namespace) is copied into the
// shop's; the program refuses a new password on a running release, so the copy does not go
// stale. Both objects go into the shop's namespace, which the cache creates, so they wait for
// the cache. The main release must run on the cluster of this program's kubernetes provider (its
// endpoints are names of that cluster), and its NetworkPolicy admits only pods with its client
// labels (clientLabels; redis-client: "true" by default): give them to the app's pods.
func connectToMainStack(ctx *pulumi.Context, stack string, cache pulumi.Resource) error {
	ref, err := pulumi.NewStackReference(ctx, stack, nil)
	if err != nil {
		return err
	}
	output := func(name string) pulumi.StringOutput {
		return ref.GetStringOutput(pulumi.String(name))
	}
	// A namespaced object's ID is "namespace/name".
	sourceID := pulumi.Sprintf("%s/%s", output("namespace"), output("secretName")).
		ApplyT(func(id string) pulumi.ID { return pulumi.ID(id) }).(pulumi.IDOutput)
	source, err := corev1.GetSecret(ctx, "main-redis-auth", sourceID, nil)
	if err != nil {
		return err
	}
	auth, err := corev1.NewSecret(ctx, "shared-redis-auth", &corev1.SecretArgs{
		Metadata: &metav1.ObjectMetaArgs{
			Name:      pulumi.String("shared-redis-auth"),
			Namespace: pulumi.String(namespace),
		},
		Type: pulumi.String("Opaque"),
		Data: pulumi.StringMap{
			"password": pulumi.ToSecret(source.Data.MapIndex(pulumi.String("password"))).(pulumi.StringOutput),
		},
	}, pulumi.DependsOn([]pulumi.Resource{cache}))
	if err != nil {
		return err
	}
	settings, err := corev1.NewConfigMap(ctx, "shared-redis", &corev1.ConfigMapArgs{
		Metadata: &metav1.ObjectMetaArgs{
			Name:      pulumi.String("shared-redis"),
			Namespace: pulumi.String(namespace),
		},
		Data: pulumi.StringMap{
			"REDIS_MASTER":     output("masterEndpoint"),
			"REDIS_SENTINELS":  output("sentinelEndpoint"),
			"REDIS_MASTER_SET": output("masterSetName"),
			"REDIS_SECRET":     auth.Metadata.Name().Elem(),
		},
	}, pulumi.DependsOn([]pulumi.Resource{cache}))
	if err != nil {
		return err
	}
	ctx.Export("sharedRedisMaster", output("masterEndpoint"))
	ctx.Export("sharedRedisSettings", settings.Metadata.Name())
	return nil
}
