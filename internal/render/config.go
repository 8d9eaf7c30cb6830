package render

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"sigs.k8s.io/yaml"
)

// Project is what the renderer reads of Pulumi.yaml.
type Project struct {
	Name   string                   `json:"name"`
	Config map[string]ConfigDeclare `json:"config"`
}

// ConfigDeclare is the declaration of one config key in Pulumi.yaml.
type ConfigDeclare struct {
	Type        string `json:"type"`
	Description string `json:"description"`
	Default     any    `json:"default"`
	Secret      bool   `json:"secret"`
}

// LoadProject reads Pulumi.yaml in dir.
func LoadProject(dir string) (*Project, error) {
	var p Project
	if err := readYAML(filepath.Join(dir, "Pulumi.yaml"), &p); err != nil {
		return nil, err
	}
	if p.Name == "" {
		return nil, fmt.Errorf("%s: no project name", filepath.Join(dir, "Pulumi.yaml"))
	}
	return &p, nil
}

// StackConfig is the configuration that the engine would hand the program for one stack.
type StackConfig struct {
	Project string
	Stack   string
	// Values maps "project:key" to the value as the Go SDK sees it: strings as they are,
	// numbers and booleans as text, arrays and objects as JSON.
	Values map[string]string
	// SecretKeys lists the keys whose value is secret.
	SecretKeys []string
	// StackOutputs are what a reference to a stack reads: the outputs of the stack's last update,
	// none before the first (as for the offline render).
	StackOutputs resource.PropertyMap
}

// secretPlaceholder stands in for a value that Pulumi.<stack>.yaml holds encrypted: rendering
// offline cannot decrypt it, and must not.
const secretPlaceholder = "offline-render-placeholder-secret"

// LoadStackConfig merges the defaults declared in Pulumi.yaml with Pulumi.<stack>.yaml, as the
// Pulumi CLI does. A key of this project that Pulumi.yaml does not declare is an error: it is
// most likely a typo that would otherwise be ignored.
func LoadStackConfig(dir, stack string) (*StackConfig, error) {
	project, err := LoadProject(dir)
	if err != nil {
		return nil, err
	}
	stackFile := filepath.Join(dir, "Pulumi."+stack+".yaml")
	var file struct {
		Config map[string]any `json:"config"`
	}
	if err := readYAML(stackFile, &file); err != nil {
		return nil, err
	}

	c := &StackConfig{Project: project.Name, Stack: stack, Values: map[string]string{}}
	for key, decl := range project.Config {
		if decl.Default != nil {
			value, err := configText(decl.Default)
			if err != nil {
				return nil, fmt.Errorf("default of %s in Pulumi.yaml: %w", key, err)
			}
			c.Values[project.Name+":"+key] = value
		}
	}
	var unknown []string
	for key, raw := range file.Config {
		full := key
		if !strings.Contains(key, ":") {
			full = project.Name + ":" + key
		}
		if short, ok := strings.CutPrefix(full, project.Name+":"); ok {
			if _, declared := project.Config[short]; !declared {
				unknown = append(unknown, key)
				continue
			}
		}
		if m, ok := raw.(map[string]any); ok && len(m) == 1 && m["secure"] != nil {
			c.Values[full] = secretPlaceholder
			c.SecretKeys = append(c.SecretKeys, full)
			continue
		}
		value, err := configText(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", stackFile, key, err)
		}
		c.Values[full] = value
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, fmt.Errorf("%s: keys not declared in Pulumi.yaml: %s", stackFile, strings.Join(unknown, ", "))
	}
	sort.Strings(c.SecretKeys)
	return c, nil
}

// configText renders a YAML value the way the Pulumi CLI hands it to a Go program.
func configText(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case json.Number:
		return v.String(), nil
	case bool:
		return fmt.Sprint(v), nil
	default:
		b, err := json.Marshal(v)
		return string(b), err
	}
}

// readYAML decodes a YAML file, keeping numbers as written (json.Number), not as float64.
func readYAML(path string, out any) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	asJSON, err := yaml.YAMLToJSON(raw)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	dec := json.NewDecoder(bytes.NewReader(asJSON))
	dec.UseNumber()
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
