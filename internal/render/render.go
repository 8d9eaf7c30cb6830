// Package render runs the Pulumi program under Pulumi's mock monitor, records every resource it
// registers, and writes the Kubernetes objects as YAML plus a plan of all resources. The offline
// renderer (cmd/render) and the tests share it.
package render

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"sigs.k8s.io/yaml"
)

// Resource is one registration as the mock monitor saw it.
type Resource struct {
	Type     string
	Name     string
	Parent   string // "type::name" of the parent; the stack for top-level resources
	Provider string // "type::name" of the explicit provider; empty for the default one
	Custom   bool
	Inputs   resource.PropertyMap
}

// Recorder is a pulumi.MockResourceMonitor that keeps every registration. Its outputs are its
// inputs, plus a made-up name and ARN where the provider would compute them, so that values flow
// on as they would after a create.
type Recorder struct {
	mu           sync.Mutex
	resources    []Resource
	stackOutputs resource.PropertyMap
}

// GeneratedPassword is what a random.RandomPassword yields under the recorder.
const GeneratedPassword = "offline-render-generated-password"

// GeneratedKey and GeneratedCertificate are what the tls provider's keys and certificates yield
// under the recorder: placeholders, not PEM.
const (
	GeneratedKey         = "offline-render-generated-private-key"
	GeneratedCertificate = "offline-render-generated-certificate"
)

// NewResource records a registration.
func (r *Recorder) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	parent := ""
	switch {
	case args.RegisterRPC != nil:
		parent = urnTypeAndName(args.RegisterRPC.GetParent())
	case args.ReadRPC != nil:
		parent = urnTypeAndName(args.ReadRPC.GetParent())
	}
	r.mu.Lock()
	r.resources = append(r.resources, Resource{
		Type: args.TypeToken, Name: args.Name, Parent: parent, Provider: providerTypeAndName(args.Provider),
		Custom: args.Custom, Inputs: args.Inputs,
	})
	r.mu.Unlock()

	outputs := args.Inputs.Copy()
	// Outputs that a provider computes, made up deterministically, so that references between
	// resources (a cluster's name, a key's ARN) show in the manifests and the plan.
	if !outputs.HasValue("name") {
		outputs["name"] = resource.NewProperty(args.Name)
	}
	if strings.HasPrefix(args.TypeToken, "aws:") && !outputs.HasValue("arn") {
		outputs["arn"] = resource.NewProperty("arn:aws:mock:::" + args.TypeToken + "/" + args.Name)
	}
	switch args.TypeToken {
	case "random:index/randomPassword:RandomPassword":
		outputs["result"] = resource.MakeSecret(resource.NewProperty(GeneratedPassword))
	case "tls:index/privateKey:PrivateKey":
		outputs["privateKeyPem"] = resource.MakeSecret(resource.NewProperty(GeneratedKey))
	case "tls:index/selfSignedCert:SelfSignedCert", "tls:index/locallySignedCert:LocallySignedCert":
		outputs["certPem"] = resource.NewProperty(GeneratedCertificate)
	case "tls:index/certRequest:CertRequest":
		outputs["certRequestPem"] = resource.NewProperty(GeneratedCertificate + " request")
	case "pulumi:pulumi:StackReference":
		stackOutputs := r.stackOutputs
		if stackOutputs == nil {
			stackOutputs = resource.PropertyMap{}
		}
		outputs["outputs"] = resource.NewProperty(stackOutputs)
		outputs["secretOutputNames"] = resource.NewProperty([]resource.PropertyValue{})
	}
	return args.Name + "-id", outputs, nil
}

// Call answers invokes; the program makes none that need an answer.
func (r *Recorder) Call(args pulumi.MockCallArgs) (resource.PropertyMap, error) {
	return resource.PropertyMap{}, nil
}

// Resources returns every registration, sorted by type and name: registration order depends on
// goroutine scheduling, and the output must not.
func (r *Recorder) Resources() []Resource {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := append([]Resource(nil), r.resources...)
	sort.Slice(out, func(i, j int) bool {
		if out[i].Type != out[j].Type {
			return out[i].Type < out[j].Type
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// urnTypeAndName turns urn:pulumi:stack::project::parentType$type::name into "type::name".
func urnTypeAndName(urn string) string {
	parts := strings.Split(urn, "::")
	if len(parts) < 4 {
		return ""
	}
	types := strings.Split(parts[2], "$")
	return types[len(types)-1] + "::" + strings.Join(parts[3:], "::")
}

// providerTypeAndName turns a provider reference "URN::ID" into "type::name". A default provider
// (one the program did not create, named default_<version>) gives "".
func providerTypeAndName(ref string) string {
	i := strings.LastIndex(ref, "::")
	if i < 0 {
		return ""
	}
	name := urnTypeAndName(ref[:i])
	if _, short, _ := strings.Cut(name, "::"); strings.HasPrefix(short, "default") {
		return ""
	}
	return name
}

// Run evaluates program under a fresh Recorder with the stack's configuration. dryRun simulates
// a preview, in which outputs of resources not yet created are unknown.
func Run(program pulumi.RunFunc, cfg *StackConfig, dryRun bool) (*Recorder, error) {
	rec := &Recorder{stackOutputs: cfg.StackOutputs}
	err := pulumi.RunErr(program, pulumi.WithMocks(cfg.Project, cfg.Stack, rec), func(info *pulumi.RunInfo) {
		info.Config = cfg.Values
		info.ConfigSecretKeys = cfg.SecretKeys
		info.DryRun = dryRun
	})
	return rec, unwrapSingle(err)
}

// unwrapSingle returns the program's own error when the SDK wrapped it alone in a multierror
// ("1 error occurred: * ..."), so that users read the program's message as it was written.
func unwrapSingle(err error) error {
	var multi interface{ WrappedErrors() []error }
	if errors.As(err, &multi) && len(multi.WrappedErrors()) == 1 {
		return multi.WrappedErrors()[0]
	}
	return err
}

// Redacted replaces every secret value in rendered output.
const Redacted = "<redacted>"

// Unknown stands for a value that is only known after the resource is created (in a preview).
const Unknown = "<unknown>"

// IsKubernetesObject says whether a registration is a Kubernetes object: a resource of the
// kubernetes provider with an apiVersion and a kind (a Helm release, for one, has neither), and
// no Patch, which changes an object that something else creates.
func IsKubernetesObject(r Resource) bool {
	return r.Custom && strings.HasPrefix(r.Type, "kubernetes:") && !strings.HasSuffix(r.Type, "Patch") &&
		r.Inputs.HasValue("apiVersion") && r.Inputs.HasValue("kind")
}

// Object returns a Kubernetes object's inputs as plain values, with secrets redacted unless
// showSecrets.
func Object(r Resource, showSecrets bool) map[string]any {
	return plain(resource.NewProperty(r.Inputs), showSecrets, false).(map[string]any)
}

func plain(v resource.PropertyValue, showSecrets, inSecret bool) any {
	switch {
	case v.IsSecret():
		return plain(v.SecretValue().Element, showSecrets, true)
	case v.IsComputed() || (v.IsOutput() && !v.OutputValue().Known):
		return Unknown
	case v.IsOutput():
		return plain(v.OutputValue().Element, showSecrets, inSecret || v.OutputValue().Secret)
	case v.IsObject():
		out := map[string]any{}
		for k, e := range v.ObjectValue() {
			out[string(k)] = plain(e, showSecrets, inSecret)
		}
		return out
	case v.IsArray():
		out := []any{}
		for _, e := range v.ArrayValue() {
			out = append(out, plain(e, showSecrets, inSecret))
		}
		return out
	case v.IsNull():
		return nil
	case inSecret && !showSecrets:
		return Redacted
	case v.IsString():
		return v.StringValue()
	case v.IsBool():
		return v.BoolValue()
	case v.IsNumber():
		n := v.NumberValue()
		if n == math.Trunc(n) {
			return int64(n)
		}
		return n
	default:
		return fmt.Sprint(v.V)
	}
}

// Manifests returns one YAML document per Kubernetes object, keyed by a file name of kind and
// name (statefulset-redis.yaml), and plan.json, which lists every resource with its parent.
func Manifests(resources []Resource, showSecrets bool) (map[string][]byte, error) {
	files := map[string][]byte{}
	type planEntry struct {
		Type     string `json:"type"`
		Name     string `json:"name"`
		Parent   string `json:"parent"`
		Provider string `json:"provider,omitempty"`
	}
	plan := []planEntry{}
	for _, r := range resources {
		plan = append(plan, planEntry{Type: r.Type, Name: r.Name, Parent: r.Parent, Provider: r.Provider})
		if !IsKubernetesObject(r) {
			continue
		}
		obj := Object(r, showSecrets)
		kind, _ := obj["kind"].(string)
		meta, _ := obj["metadata"].(map[string]any)
		if name, _ := meta["name"].(string); kind == "" || name == "" {
			return nil, fmt.Errorf("%s %s: no kind or metadata.name", r.Type, r.Name)
		}
		// Named after the Pulumi resource, which keeps its name when the object's changes (a
		// content-addressed ConfigMap), so that a diff of two renders shows the change in place.
		file := strings.ToLower(kind) + "-" + r.Name + ".yaml"
		if _, taken := files[file]; taken {
			return nil, fmt.Errorf("two objects would be written to %s", file)
		}
		body, err := yaml.Marshal(obj)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", r.Type, r.Name, err)
		}
		files[file] = body
	}
	body, err := json.MarshalIndent(plan, "", "  ")
	if err != nil {
		return nil, err
	}
	files[PlanFile] = append(body, '\n')
	return files, nil
}

// PlanFile is the name of the plan among the rendered files.
const PlanFile = "plan.json"

// Write puts files into dir. A dir that holds an earlier render (it has a plan.json) is cleared
// of its YAML and plan first, so that objects that no longer exist do not linger; any other
// non-empty dir is refused.
func Write(dir string, files map[string][]byte) error {
	entries, err := os.ReadDir(dir)
	switch {
	case os.IsNotExist(err):
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	case err != nil:
		return err
	case len(entries) > 0:
		if _, err := os.Stat(filepath.Join(dir, PlanFile)); err != nil {
			return fmt.Errorf("%s is not empty and holds no earlier render (%s); choose an empty or new directory", dir, PlanFile)
		}
		for _, e := range entries {
			if e.Name() == PlanFile || strings.HasSuffix(e.Name(), ".yaml") {
				if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
					return err
				}
			}
		}
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), body, 0o644); err != nil {
			return err
		}
	}
	return nil
}
