package lab

import (
	"cmp"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// The lab runs only when asked: it needs root, iproute2, util-linux, Debian's redis-server and
// redis-tools (or valkey-server and valkey-tools) and haproxy. .ci/run asks for the fast subset;
// BENCHMARKS.md comes from the full set (see the README).
var (
	mode       = flag.String("lab", os.Getenv("REDIS_SENTINEL_LAB"), "scenarios to run: fast, full, or a comma-separated list of names (default: $REDIS_SENTINEL_LAB; empty skips the lab)")
	manifests  = flag.String("lab.manifests", "", "directory of a `cmd/render -stack local` output to run (default: render the local stack)")
	reportDir  = flag.String("lab.report", "", "write results.json and results.md here (default: a temporary directory, logged)")
	benchmarks = flag.String("lab.benchmarks", "", "write BENCHMARKS.md here")
	// CI runs ours only: the baseline is measured, never judged, and its runs took half of the
	// fast subset's time.
	withBaseline = flag.Bool("lab.baseline", true, "run every scenario against the baseline too")
	// engine is the stacks' engine key: the servers are Debian's redis-server or valkey-server.
	engine = flag.String("lab.engine", cmp.Or(os.Getenv("REDIS_SENTINEL_LAB_ENGINE"), "redis"), "the engine to render and run, redis or valkey (default: $REDIS_SENTINEL_LAB_ENGINE, else redis)")
	// withTLS runs every scenario with a third setup too: ours with TLS on every connection.
	withTLS = flag.Bool("lab.tls", os.Getenv("REDIS_SENTINEL_LAB_TLS") == "true", "run every scenario with ours with TLS too (default: $REDIS_SENTINEL_LAB_TLS is true)")
)

// stackValues are the config keys the lab renders the stacks with.
func stackValues() map[string]string {
	return map[string]string{"engine": *engine}
}

// requireLabTools fails t unless it runs as root and every program the lab runs is installed:
// the namespaces' tools, the engine's server and cli, and extra.
func requireLabTools(t *testing.T, extra ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the lab creates network namespaces: run it as root")
	}
	for _, tool := range append([]string{"ip", "nsenter", "unshare", "setpriv", *engine + "-server", *engine + "-cli"}, extra...) {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the lab needs %s: %v", tool, err)
		}
	}
	version, err := exec.Command(*engine+"-server", "--version").Output()
	if err != nil {
		t.Fatalf("%s-server --version: %v", *engine, err)
	}
	t.Logf("engine %s: %s", *engine, strings.TrimSpace(string(version)))
}

func TestMain(m *testing.M) {
	if isRole, err := RunRole(); isRole {
		if err != nil {
			fmt.Fprintln(os.Stderr, "lab:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	flag.Parse()
	CloseOnSignal()
	os.Exit(m.Run())
}

func TestFailoverLab(t *testing.T) {
	if *mode == "" {
		t.Skip("the failover lab runs with -lab fast|full or REDIS_SENTINEL_LAB=fast|full (root, redis-server, redis-sentinel, haproxy)")
	}
	scenarios, err := Select(*mode)
	if err != nil {
		t.Fatal(err)
	}
	tools := []string{"haproxy"}
	if *withTLS {
		tools = append(tools, "openssl") // certificate-renewal reads the servers' certificates with it
	}
	requireLabTools(t, tools...)
	setups, err := Setups(repoRoot, *manifests, stackValues(), *withTLS)
	if err != nil {
		t.Fatal(err)
	}
	out := *reportDir
	if out == "" {
		out = t.TempDir()
	}
	var results []*Result
	for _, s := range scenarios {
		var setupNames []string
		switch {
		case s.TLSOnly && !*withTLS:
			t.Logf("%s: skipped, it needs -lab.tls", s.Name)
			continue
		case s.TLSOnly:
			setupNames = []string{SetupOursTLS}
		default:
			setupNames = []string{SetupOurs}
			if *withTLS {
				setupNames = append(setupNames, SetupOursTLS)
			}
			if *withBaseline && !s.OursOnly {
				setupNames = append(setupNames, SetupBaseline)
			}
		}
		for _, setup := range setupNames {
			t.Run(s.Name+"/"+setup, func(t *testing.T) {
				dir := filepath.Join(out, "runs", s.Name, setup)
				began := time.Now()
				r, err := Run(s, setup, setups[setup], dir)
				results = append(results, r)
				if err != nil {
					r.Error = err.Error()
					t.Errorf("%v (logs in %s)", err, dir)
					return
				}
				t.Logf("%s in %.0f s: %s", setup, time.Since(began).Seconds(), r.Summary())
				for _, miss := range r.Missed() {
					t.Errorf("target missed: %s: want %s, got %s (logs in %s)", miss.Name, miss.Want, miss.Got, dir)
				}
			})
		}
	}
	table := Markdown(results)
	t.Logf("results (also in %s):\n%s", out, table)
	js, err := json.MarshalIndent(results, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "results.json"), js, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "results.md"), []byte(table), 0o644); err != nil {
		t.Fatal(err)
	}
	if *benchmarks != "" {
		page := benchmarksPage(*mode, table)
		if old, err := os.ReadFile(*benchmarks); err == nil {
			page = withSectionsOf(page, string(old))
		}
		if err := os.WriteFile(*benchmarks, []byte(page), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// benchmarksPage is BENCHMARKS.md: the table and what it ran on.
func benchmarksPage(mode, table string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `# Failover lab: ours vs the classic setup

Regenerate with (as root, from the repository root):

    REDIS_SENTINEL_LAB=full go test ./tests/lab -run TestFailoverLab -timeout 60m -v -lab.tls -lab.benchmarks "$PWD/BENCHMARKS.md"

Ran %s, mode %q, on %s;
%s; %s; %s.

`, time.Now().UTC().Format("2006-01-02 15:04 MST"), mode, machine(),
		version("redis-server", "--version"), version("haproxy", "-v"), version("dpkg-query", "-W", "-f", "prometheus-redis-exporter ${Version}", "prometheus-redis-exporter"))
	b.WriteString(table)
	return b.String()
}

// machine says what the lab ran on: platform, CPUs, kernel and Go.
func machine() string {
	cpu := "unknown"
	if info, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(info), "\n") {
			if name, ok := strings.CutPrefix(line, "model name\t: "); ok {
				cpu = name
				break
			}
		}
	}
	return fmt.Sprintf("%s, %d CPUs (%s), kernel %s, %s", runtime.GOOS+"/"+runtime.GOARCH, runtime.NumCPU(), cpu, version("uname", "-r"), runtime.Version())
}

// version is the first line a tool prints about itself, or "unknown".
func version(name string, args ...string) string {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
}
