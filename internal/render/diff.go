package render

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/pmezard/go-difflib/difflib"
	"sigs.k8s.io/yaml"
)

// ReadRender reads an earlier render from dir: plan.json and every YAML file, by name, as Write
// left them. It refuses a dir that holds no render (no plan.json, or files that are not what the
// renderer writes), and one whose Secrets hold values rather than Redacted: a render made with
// -show-secrets, whose values a diff would print.
func ReadRender(dir string) (map[string][]byte, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{}
	for _, e := range entries {
		if e.IsDir() || (e.Name() != PlanFile && !strings.HasSuffix(e.Name(), ".yaml")) {
			continue
		}
		body, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		files[e.Name()] = body
	}
	plan, ok := files[PlanFile]
	if !ok {
		return nil, fmt.Errorf("%s holds no render: it has no %s (make one with render -stack NAME -out %s)", dir, PlanFile, dir)
	}
	var entriesOfPlan []struct {
		Type string `json:"type"`
		Name string `json:"name"`
	}
	if err := json.Unmarshal(plan, &entriesOfPlan); err != nil {
		return nil, fmt.Errorf("%s holds no render: %s is not a plan: %w", dir, PlanFile, err)
	}
	for name, body := range files {
		if name == PlanFile {
			continue
		}
		if err := checkRenderedObject(body); err != nil {
			return nil, fmt.Errorf("%s holds no render: %s: %w", dir, name, err)
		}
	}
	return files, nil
}

// checkRenderedObject accepts a Kubernetes object as the renderer writes it. Secret values may
// only be Redacted (or Unknown, in a preview): this program puts secret values into Secrets
// only, so that is where an unredacted render shows them.
func checkRenderedObject(body []byte) error {
	var obj struct {
		Kind       string         `json:"kind"`
		Data       map[string]any `json:"data"`
		StringData map[string]any `json:"stringData"`
	}
	if err := yaml.Unmarshal(body, &obj); err != nil || obj.Kind == "" {
		return fmt.Errorf("not a Kubernetes object with a kind (%v)", err)
	}
	if obj.Kind != "Secret" {
		return nil
	}
	// In a fixed order, so that the error names the same key every time.
	for _, field := range []string{"data", "stringData"} {
		values := map[string]map[string]any{"data": obj.Data, "stringData": obj.StringData}[field]
		for _, key := range slices.Sorted(maps.Keys(values)) {
			if value := values[key]; value != Redacted && value != Unknown {
				return fmt.Errorf("%s.%s is not %s: this render shows secret values (-show-secrets), which a diff would print", field, key, Redacted)
			}
		}
	}
	return nil
}

// Change says how a file differs between two renders.
type Change string

const (
	Added   Change = "added"
	Removed Change = "removed"
	Changed Change = "changed"
)

// FileDiff is one file that differs between two renders, with a unified diff from old/NAME to
// new/NAME (/dev/null for the side that has no such file).
type FileDiff struct {
	Name    string
	Change  Change
	Unified string
}

// Diff compares two renders file by file and returns the files that differ, by name. Files are
// compared as lines: a missing newline at the end of a file is no difference.
func Diff(old, current map[string][]byte) ([]FileDiff, error) {
	names := map[string]bool{}
	for name := range old {
		names[name] = true
	}
	for name := range current {
		names[name] = true
	}
	sorted := make([]string, 0, len(names))
	for name := range names {
		sorted = append(sorted, name)
	}
	sort.Strings(sorted)

	var diffs []FileDiff
	for _, name := range sorted {
		before, inOld := old[name]
		after, inCurrent := current[name]
		a, b := lines(before), lines(after)
		if inOld && inCurrent && slices.Equal(a, b) {
			continue
		}
		d := FileDiff{Name: name, Change: Changed}
		from, to := "old/"+name, "new/"+name
		if !inOld {
			d.Change, from = Added, "/dev/null"
		}
		if !inCurrent {
			d.Change, to = Removed, "/dev/null"
		}
		unified, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{A: a, B: b, FromFile: from, ToFile: to, Context: 3})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		d.Unified = unified
		diffs = append(diffs, d)
	}
	return diffs, nil
}

// lines splits text into lines that each end in a newline, as difflib expects them.
func lines(text []byte) []string {
	if len(text) == 0 {
		return nil
	}
	out := strings.SplitAfter(string(text), "\n")
	if last := len(out) - 1; out[last] == "" {
		out = out[:last]
	} else {
		out[last] += "\n"
	}
	return out
}
