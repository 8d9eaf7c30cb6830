// Command render shows what `pulumi up` would create, with no Pulumi CLI, credentials or cluster:
// it runs the program under Pulumi's mock monitor with a stack's configuration (Pulumi.yaml
// defaults, then Pulumi.<stack>.yaml) and writes every Kubernetes object as YAML, one file per
// object, plus plan.json listing every resource. The same input gives the same bytes. Secret
// values are redacted unless -show-secrets. On invalid configuration it prints every problem,
// writes nothing and exits 1.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/d3ad221e/redis-sentinel/internal/render"
	"github.com/d3ad221e/redis-sentinel/stacks"
)

func main() {
	stack := flag.String("stack", "", "stack whose Pulumi.<stack>.yaml to render (local, gke, eks)")
	out := flag.String("out", "", "directory to write the manifests and plan.json into")
	dir := flag.String("project", ".", "directory that holds Pulumi.yaml and the stack files")
	showSecrets := flag.Bool("show-secrets", false, "write secret values instead of "+render.Redacted)
	preview := flag.Bool("preview", false, "render as a preview (dry run): values known only after a create are "+render.Unknown)
	flag.Parse()
	if *stack == "" || *out == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: render -stack NAME -out DIR [-project DIR] [-show-secrets] [-preview]")
		os.Exit(2)
	}
	if err := run(*dir, *stack, *out, *showSecrets, *preview); err != nil {
		fmt.Fprintln(os.Stderr, "render:", err)
		os.Exit(1)
	}
}

func run(dir, stack, out string, showSecrets, preview bool) error {
	cfg, err := render.LoadStackConfig(dir, stack)
	if err != nil {
		return err
	}
	rec, err := render.Run(stacks.Run, cfg, preview)
	if err != nil {
		return err
	}
	files, err := render.Manifests(rec.Resources(), showSecrets)
	if err != nil {
		return err
	}
	if err := render.Write(out, files); err != nil {
		return err
	}
	fmt.Printf("rendered stack %s: %d files in %s\n", stack, len(files), out)
	return nil
}
