package stacks

import (
	"encoding/json"
	"fmt"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/internals"

	"github.com/d3ad221e/redis-sentinel/components"
)

// settingsOutput is the stack output that records the release's components.Settings, a secret
// because it holds the password's fingerprint.
const settingsOutput = "settings"

// checkChange refuses, before anything else is registered, a configuration that the release
// running on this stack cannot take in place (components.CheckChange). It reads what the last
// update recorded through a reference to this same stack; on the first update there is nothing.
func checkChange(ctx *pulumi.Context, next components.Settings) error {
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
	var previous components.Settings
	if err := json.Unmarshal(raw, &previous); err != nil {
		return fmt.Errorf("the %q output of stack %s is not what this program records: %w", settingsOutput, self, err)
	}
	if err := components.CheckChange(previous, next); err != nil {
		return fmt.Errorf("stack %q refuses this update, nothing was changed:\n%w", ctx.Stack(), err)
	}
	return nil
}

// exportSettings records the settings for the next update's checkChange.
func exportSettings(ctx *pulumi.Context, s components.Settings) error {
	raw, err := json.Marshal(s)
	if err != nil {
		return err
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return err
	}
	ctx.Export(settingsOutput, pulumi.ToSecret(pulumi.ToMap(m)))
	return nil
}
