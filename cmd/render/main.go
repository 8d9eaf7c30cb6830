// Command render shows what `pulumi up` would create, with no Pulumi CLI, credentials or cluster:
// it runs the program under Pulumi's mock monitor with a stack's configuration (Pulumi.yaml
// defaults, then Pulumi.<stack>.yaml) and writes every Kubernetes object as YAML, one file per
// object, plus plan.json listing every resource. The same input gives the same bytes. Secret
// values are redacted unless -show-secrets. On invalid configuration it prints every problem,
// writes nothing and exits 1.
//
// With -diff OLD_DIR instead of -out, it writes nothing and prints a unified diff, object by
// object, from an earlier render in OLD_DIR to this one. Its exit code is that of diff(1): 0 when
// they are the same, 1 when they differ, 2 on trouble (invalid configuration included), so that
// a script can tell "something changed" from "something broke".
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"

	"github.com/d3ad221e/redis-sentinel/internal/render"
	"github.com/d3ad221e/redis-sentinel/stacks"
)

const usage = "usage: render -stack NAME (-out DIR [-show-secrets] | -diff OLD_DIR) [-project DIR] [-preview]"

func main() {
	stack := flag.String("stack", "", "stack whose Pulumi.<stack>.yaml to render (local, gke, eks)")
	out := flag.String("out", "", "directory to write the manifests and plan.json into")
	oldDir := flag.String("diff", "", "directory of an earlier render to compare with; prints a unified diff instead of writing")
	dir := flag.String("project", ".", "directory that holds Pulumi.yaml and the stack files")
	showSecrets := flag.Bool("show-secrets", false, "write secret values instead of "+render.Redacted)
	preview := flag.Bool("preview", false, "render as a preview (dry run): values known only after a create are "+render.Unknown)
	flag.Parse()
	if *stack == "" || (*out == "") == (*oldDir == "") || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	if *oldDir != "" {
		if *showSecrets {
			// A diff is made to be read in reviews, CI logs and pull request comments.
			fmt.Fprintln(os.Stderr, "render: -diff never shows secret values; drop -show-secrets")
			os.Exit(2)
		}
		os.Exit(diff(*dir, *stack, *oldDir, *preview))
	}
	if err := write(*dir, *stack, *out, *showSecrets, *preview); err != nil {
		fmt.Fprintln(os.Stderr, "render:", err)
		os.Exit(1)
	}
}

// files renders a stack: file name to content.
func files(dir, stack string, showSecrets, preview bool) (map[string][]byte, error) {
	cfg, err := render.LoadStackConfig(dir, stack)
	if err != nil {
		return nil, err
	}
	rec, err := render.Run(stacks.Run, cfg, preview)
	if err != nil {
		return nil, err
	}
	return render.Manifests(rec.Resources(), showSecrets)
}

func write(dir, stack, out string, showSecrets, preview bool) error {
	rendered, err := files(dir, stack, showSecrets, preview)
	if err != nil {
		return err
	}
	if err := render.Write(out, rendered); err != nil {
		return err
	}
	fmt.Printf("rendered stack %s: %d files in %s\n", stack, len(rendered), out)
	return nil
}

// diff prints what changed from the render in oldDir and returns the exit code: 0 when nothing
// did, 1 when something did, 2 on trouble. It prints nothing when nothing changed.
func diff(dir, stack, oldDir string, preview bool) int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "render:", err)
		return 2
	}
	old, err := render.ReadRender(oldDir)
	if err != nil {
		return fail(err)
	}
	rendered, err := files(dir, stack, false, preview)
	if err != nil {
		return fail(err)
	}
	diffs, err := render.Diff(old, rendered)
	if err != nil {
		return fail(err)
	}
	if len(diffs) == 0 {
		return 0
	}
	w := bufio.NewWriter(os.Stdout)
	count := map[render.Change]int{}
	for _, d := range diffs {
		count[d.Change]++
		fmt.Fprintf(w, "%s: %s\n%s", d.Change, d.Name, d.Unified)
	}
	fmt.Fprintf(w, "stack %s differs from %s in %d files: %d changed, %d added, %d removed\n",
		stack, oldDir, len(diffs), count[render.Changed], count[render.Added], count[render.Removed])
	if err := w.Flush(); err != nil {
		return fail(err)
	}
	return 1
}
