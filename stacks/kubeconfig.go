package stacks

import (
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"sigs.k8s.io/yaml"
)

// execCredential is the exec plugin a kubeconfig runs for a token: the cloud's CLI, never a
// long-lived credential stored in the kubeconfig.
type execCredential struct {
	command     string
	args        []string
	installHint string
}

// kubeconfig builds a kubeconfig for one cluster. It is a secret: it names the cluster's endpoint
// and CA, and other stacks read it through a StackReference.
func kubeconfig(name string, server, caData pulumi.StringOutput, exec execCredential) pulumi.StringOutput {
	out := pulumi.All(server, caData).ApplyT(func(v []any) (string, error) {
		user := map[string]any{
			"apiVersion":         "client.authentication.k8s.io/v1beta1",
			"command":            exec.command,
			"installHint":        exec.installHint,
			"provideClusterInfo": true,
			"interactiveMode":    "Never",
		}
		if len(exec.args) > 0 {
			user["args"] = exec.args
		}
		body, err := yaml.Marshal(map[string]any{
			"apiVersion": "v1",
			"kind":       "Config",
			"clusters": []any{map[string]any{"name": name, "cluster": map[string]any{
				"server": v[0].(string), "certificate-authority-data": v[1].(string),
			}}},
			"contexts":        []any{map[string]any{"name": name, "context": map[string]any{"cluster": name, "user": name}}},
			"current-context": name,
			"users":           []any{map[string]any{"name": name, "user": map[string]any{"exec": user}}},
		})
		return string(body), err
	}).(pulumi.StringOutput)
	return pulumi.ToSecret(out).(pulumi.StringOutput)
}
