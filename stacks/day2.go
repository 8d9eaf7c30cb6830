package stacks

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/internals"

	"github.com/d3ad221e/redis-sentinel/components"
)

// settingsOutput is the stack output that records the settings, a secret because it holds the
// password's fingerprint.
const settingsOutput = "settings"

// settings are what the stack records after an update and checks the next one against: the
// release's, and those of its cloud that make the cloud provider replace the cluster.
type settings struct {
	components.Settings
	Cluster map[string]string `json:"cluster,omitempty"`
}

// settingsOf returns the settings of a configuration.
func settingsOf(cfg *Config) settings {
	passwords := components.Passwords{Password: cfg.Password, Previous: cfg.PreviousPassword, Monitor: cfg.MonitorPassword}
	s := settings{Settings: components.SettingsOf(cfg.Name, cfg.Release, passwords)}
	if cfg.Topology == TopologyCluster {
		s.Settings = components.ClusterSettingsOf(cfg.Name, cfg.Cluster, passwords)
		// The component has no cloud; the stack's decides the cluster it runs on all the same.
		s.Cloud = string(cfg.Release.Cloud)
	}
	list := func(l []string) string { return strings.Join(l, ",") }
	switch cfg.Release.Cloud {
	case components.CloudNone, components.CloudAKS:
		// The release's objects belong to the default provider (the ambient kubeconfig) or to one
		// built from the kubeconfig key: a move between them, or to another cluster, would
		// replace every object.
		cluster := "ambient kubeconfig"
		if cfg.Kubeconfig != "" {
			cluster = "cluster " + cfg.KubeconfigCluster
		}
		s.Cluster = map[string]string{"kubeconfig": cluster}
	case components.CloudGKE:
		g := cfg.GKE
		s.Cluster = map[string]string{
			"gcpProject": g.Project, "gcpRegion": g.Region, "gkeMasterCidr": g.MasterCIDR,
			"gkeNetwork": g.Network, "gkeSubnetwork": g.Subnetwork, "gkeSubnetCidr": g.SubnetCIDR,
			"gkePodsCidr": g.PodsCIDR, "gkeServicesCidr": g.ServicesCIDR,
			"gkePodsRangeName": g.PodsRangeName, "gkeServicesRangeName": g.ServicesRangeName,
		}
	case components.CloudEKS:
		e := cfg.EKS
		s.Cluster = map[string]string{
			"awsRegion": e.Region, "eksAvailabilityZones": list(e.AvailabilityZones), "eksVpcCidr": e.VPCCIDR,
			"eksVpcId": e.VPCID, "eksPrivateSubnetIds": list(e.PrivateSubnetIDs),
			// A new node group: its nodes would all go at once when the old group is deleted.
			"eksInstanceTypes": list(e.InstanceTypes),
		}
	}
	return s
}

// checkClusterChange refuses a change of a key that replaces the cluster: the volumes of the
// release go with the old one.
func checkClusterChange(previous, next map[string]string) error {
	var errs []error
	for _, key := range slices.Sorted(maps.Keys(previous)) {
		if value, ok := next[key]; ok && value != previous[key] {
			errs = append(errs, &components.ChangeError{
				Field: key, From: fmt.Sprintf("%q", previous[key]), To: fmt.Sprintf("%q", value),
				Why:     "the release would be replaced (its cluster, node group or Kubernetes provider), and its nodes and volumes would go with the old one",
				Instead: "keep it, or create a new stack with the new value, deploy the release there, move the data and the clients, and destroy this stack",
			})
		}
	}
	return errors.Join(errs...)
}

// checkChange refuses, before anything else is registered, a configuration that the release
// running on this stack cannot take in place (components.CheckChange). It reads what the last
// update recorded through a reference to this same stack; on the first update there is nothing.
func checkChange(ctx *pulumi.Context, next settings) error {
	self := fmt.Sprintf("%s/%s/%s", ctx.Organization(), ctx.Project(), ctx.Stack())
	ref, err := pulumi.NewStackReference(ctx, "previous-settings", &pulumi.StackReferenceArgs{Name: pulumi.String(self)})
	if err != nil {
		return err
	}
	// Waiting here, on the program's own goroutine, is what keeps anything else from being
	// registered (and so changed) first. The engine reads a stack reference in previews too.
	recorded, err := internals.UnsafeAwaitOutput(ctx.Context(), ref.GetOutput(pulumi.String(settingsOutput)))
	if err != nil {
		return fmt.Errorf("read the settings this stack recorded: %w", err)
	}
	if !recorded.Known || recorded.Value == nil {
		return nil
	}
	raw, err := json.Marshal(recorded.Value)
	if err != nil {
		return err
	}
	var previous settings
	if err := json.Unmarshal(raw, &previous); err != nil {
		return fmt.Errorf("the %q output of stack %s is not what this program records: %w", settingsOutput, self, err)
	}
	if err := errors.Join(components.CheckChange(previous.Settings, next.Settings), checkClusterChange(previous.Cluster, next.Cluster)); err != nil {
		return fmt.Errorf("stack %q refuses this update, nothing was changed:\n%w", ctx.Stack(), err)
	}
	return nil
}

// RecordedSettings is what an update with cfg records in the stack output "settings" for the
// next update to check its changes against.
func RecordedSettings(cfg *Config) (map[string]any, error) {
	raw, err := json.Marshal(settingsOf(cfg))
	if err != nil {
		return nil, err
	}
	var m map[string]any
	return m, json.Unmarshal(raw, &m)
}
