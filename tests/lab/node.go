package lab

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// The real node: hack/node-fixture.sh runs a single-node cluster (kubelet, containerd, runc,
// kube-proxy, CoreDNS) in a network namespace of its own, and the test runs inside that namespace:
// the Pulumi engine, kubectl and the client. The release is the local stack, applied with
// `pulumi up`; the scenarios act on it as a user or a failing machine would.

// nodeFixture is a started node: its directory and what hack/node-fixture.sh wrote there.
type nodeFixture struct {
	dir string
	env map[string]string // node.env: POD_RANGE, SERVICE_RANGE, NODE_IP, CONTAINERD_ADDRESS
}

func openNodeFixture(dir string) (*nodeFixture, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "node.env"))
	if err != nil {
		return nil, err
	}
	env := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("node.env: %q is not KEY=VALUE", line)
		}
		env[k] = v
	}
	for _, k := range []string{"POD_RANGE", "SERVICE_RANGE", "NODE_IP", "CONTAINERD_ADDRESS"} {
		if env[k] == "" {
			return nil, fmt.Errorf("node.env lacks %s", k)
		}
	}
	return &nodeFixture{dir: dir, env: env}, nil
}

// noRouteOut checks, before any traffic, that this process's network namespace cannot reach
// anything outside the node: connecting a UDP socket (which sends nothing) needs a route.
func noRouteOut() error {
	for _, addr := range []string{"192.0.2.1:9", "8.8.8.8:53", "10.123.0.1:9", "172.16.0.1:9", "192.168.0.1:9", "[2001:db8::1]:9"} {
		c, err := net.Dial("udp", addr)
		if err == nil {
			c.Close()
			return fmt.Errorf("%s is routable from the node's namespace: traffic could leave", addr)
		}
	}
	return nil
}

// recycleVolumes empties the node's PersistentVolumes that claims of namespace held, and makes
// them available again.
func (n *nodeFixture) recycleVolumes(namespace string) error {
	out, err := n.kubectl("get", "persistentvolumes", "-o", "json")
	if err != nil {
		return err
	}
	var list struct {
		Items []struct {
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
			Spec struct {
				ClaimRef *struct {
					Namespace string `json:"namespace"`
				} `json:"claimRef"`
				Local struct {
					Path string `json:"path"`
				} `json:"local"`
			} `json:"spec"`
			Status struct {
				Phase string `json:"phase"`
			} `json:"status"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return err
	}
	for _, pv := range list.Items {
		if pv.Status.Phase != "Released" || pv.Spec.ClaimRef == nil || pv.Spec.ClaimRef.Namespace != namespace {
			continue
		}
		if !strings.HasPrefix(pv.Spec.Local.Path, filepath.Join(n.dir, "volumes")+"/") {
			return fmt.Errorf("volume %s is at %q, not under the node's volumes", pv.Metadata.Name, pv.Spec.Local.Path)
		}
		if err := os.RemoveAll(pv.Spec.Local.Path); err != nil {
			return err
		}
		if err := os.Mkdir(pv.Spec.Local.Path, 0o755); err != nil {
			return err
		}
		if _, err := n.kubectl("patch", "persistentvolume", pv.Metadata.Name, "--type=json", `-p=[{"op":"remove","path":"/spec/claimRef"}]`); err != nil {
			return err
		}
	}
	return nil
}

// kubectlCommand is kubectl against the node's cluster with args, ended when ctx is.
func (n *nodeFixture) kubectlCommand(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, filepath.Join(n.dir, "kubectl"), append([]string{"--kubeconfig", filepath.Join(n.dir, "kubeconfig")}, args...)...)
}

// kubectl runs kubectl against the node's cluster and returns its standard output.
func (n *nodeFixture) kubectl(args ...string) (string, error) {
	cmd := n.kubectlCommand(context.Background(), args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out), nil
}

// ctr runs containerd's client against the node's containerd, in the kubelet's namespace.
func (n *nodeFixture) ctr(args ...string) error {
	out, err := exec.Command("ctr", append([]string{"--address", n.env["CONTAINERD_ADDRESS"], "-n", "k8s.io"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ctr %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// podInfo is what the scenarios read of a pod.
type podInfo struct {
	Metadata struct {
		Name              string  `json:"name"`
		UID               string  `json:"uid"`
		DeletionTimestamp *string `json:"deletionTimestamp"`
	} `json:"metadata"`
	Status struct {
		PodIP      string `json:"podIP"`
		Conditions []struct {
			Type   string `json:"type"`
			Status string `json:"status"`
		} `json:"conditions"`
		ContainerStatuses []struct {
			Name         string `json:"name"`
			ContainerID  string `json:"containerID"`
			Ready        bool   `json:"ready"`
			RestartCount int    `json:"restartCount"`
		} `json:"containerStatuses"`
	} `json:"status"`
}

func (p podInfo) ready() bool {
	for _, c := range p.Status.Conditions {
		if c.Type == "Ready" {
			return c.Status == "True"
		}
	}
	return false
}

// containerID returns the containerd ID of one of the pod's containers.
func (p podInfo) containerID(name string) (string, error) {
	for _, c := range p.Status.ContainerStatuses {
		if c.Name == name {
			if id, ok := strings.CutPrefix(c.ContainerID, "containerd://"); ok {
				return id, nil
			}
		}
	}
	return "", fmt.Errorf("pod %s has no running container %s", p.Metadata.Name, name)
}

func (n *nodeFixture) pods(namespace, selector string) ([]podInfo, error) {
	out, err := n.kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "json")
	if err != nil {
		return nil, err
	}
	var list struct {
		Items []podInfo `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return nil, err
	}
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Metadata.Name < list.Items[j].Metadata.Name })
	return list.Items, nil
}

// endpointSlice is what the scenarios read of an EndpointSlice.
type endpointSlice struct {
	Metadata struct {
		Labels map[string]string `json:"labels"`
	} `json:"metadata"`
	Endpoints []struct {
		Conditions struct {
			Ready *bool `json:"ready"`
		} `json:"conditions"`
	} `json:"endpoints"`
}

// readyEndpoints counts the ready endpoints of a Service, over its EndpointSlices.
func readyEndpoints(all []endpointSlice, service string) int {
	ready := 0
	for _, s := range all {
		if s.Metadata.Labels["kubernetes.io/service-name"] != service {
			continue
		}
		for _, e := range s.Endpoints {
			if e.Conditions.Ready == nil || *e.Conditions.Ready {
				ready++
			}
		}
	}
	return ready
}

// follow lists the objects of a collection (an API path such as /api/v1/namespaces/NS/pods)
// that match selector, when it is not empty, then streams their changes from that list on with
// one watch (`kubectl get --raw ...?watch=1`), and after the list and after each change records
// value of them all, sorted by name, until stop is closed. Polling instead started a kubectl
// process or two every 0.2 s, which kept a core busy while the scenario measured; each change is
// also seen when it happens, not at the next sample. The returned function waits for the stream
// to end and returns what it saw, in order, or why the stream ended before stop.
func follow[T, V any](n *nodeFixture, collection, selector string, stop <-chan struct{}, value func([]T) V) (func() ([]timed[V], error), error) {
	query := url.Values{}
	if selector != "" {
		query.Set("labelSelector", selector)
	}
	raw, err := n.kubectl("get", "--raw", collection+"?"+query.Encode())
	if err != nil {
		return nil, err
	}
	var list struct {
		Metadata struct {
			ResourceVersion string `json:"resourceVersion"`
		} `json:"metadata"`
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal([]byte(raw), &list); err != nil {
		return nil, fmt.Errorf("%s: %v", collection, err)
	}
	current := map[string]T{}
	apply := func(kind string, object json.RawMessage) error {
		var named struct {
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		var obj T
		if err := errors.Join(json.Unmarshal(object, &named), json.Unmarshal(object, &obj)); err != nil || kind == "ERROR" {
			return fmt.Errorf("%s: watch event %s: %v: %s", collection, kind, err, object)
		}
		if kind == "DELETED" {
			delete(current, named.Metadata.Name)
		} else {
			current[named.Metadata.Name] = obj
		}
		return nil
	}
	for _, item := range list.Items {
		if err := apply("ADDED", item); err != nil {
			return nil, err
		}
	}
	var mu sync.Mutex
	var seen []timed[V]
	record := func() {
		var all []T
		for _, name := range slices.Sorted(maps.Keys(current)) {
			all = append(all, current[name])
		}
		mu.Lock()
		seen = append(seen, timed[V]{at: time.Now(), v: value(all)})
		mu.Unlock()
	}
	record()

	query.Set("watch", "1")
	query.Set("resourceVersion", list.Metadata.ResourceVersion)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := n.kubectlCommand(ctx, "get", "--raw", collection+"?"+query.Encode())
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, err
	}
	ended := make(chan error, 1)
	go func() {
		dec := json.NewDecoder(out)
		for {
			var event struct {
				Type   string          `json:"type"`
				Object json.RawMessage `json:"object"`
			}
			if err := dec.Decode(&event); err != nil {
				ended <- err
				return
			}
			if err := apply(event.Type, event.Object); err != nil {
				ended <- err
				return
			}
			record()
		}
	}()
	go func() {
		<-stop
		cancel()
	}()
	return func() ([]timed[V], error) {
		streamErr := <-ended
		waitErr := cmd.Wait()
		stopped := ctx.Err() != nil
		cancel()
		mu.Lock()
		defer mu.Unlock()
		if !stopped {
			return seen, fmt.Errorf("the watch of %s ended before the scenario did: %v, %v: %s", collection, streamErr, waitErr, stderr.String())
		}
		return seen, nil
	}, nil
}

type timed[T any] struct {
	at time.Time
	v  T
}

// followLogs streams a container's log into a buffer until the container ends; wait returns it.
func (n *nodeFixture) followLogs(namespace, pod, container string) (wait func() string, err error) {
	cmd := n.kubectlCommand(context.Background(), "logs", "-f", "-n", namespace, pod, "-c", container, "--since=1s")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	var b strings.Builder
	done := make(chan struct{})
	go func() {
		defer close(done)
		lines := bufio.NewScanner(out)
		for lines.Scan() {
			b.WriteString(lines.Text() + "\n")
		}
	}()
	return func() string {
		select {
		case <-done:
		case <-time.After(90 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		_ = cmd.Wait()
		return b.String()
	}, nil
}

// awaitRollout waits for a StatefulSet's rollout to end. The kubernetes provider 4.33 can take
// the StatefulSet's status from before the controller saw an update for a finished rollout
// (pulumi-kubernetes#4094, fixed after it): pulumi up then returns while pods still roll.
func (n *nodeFixture) awaitRollout(namespace, statefulSet string) error {
	if out, err := n.kubectl("rollout", "status", "-n", namespace, "statefulset/"+statefulSet, "--timeout=5m"); err != nil {
		return fmt.Errorf("the rollout of %s: %v\n%s", statefulSet, err, out)
	}
	return nil
}

// zombieCount prints how many of the processes defunct now are defunct 2 s later too.
const zombieCount = `defunct() { for s in /proc/[0-9]*/stat; do read -r line < "$s" 2>/dev/null || continue; case "${line##*) }" in Z*) printf '%s ' "${s%/stat}";; esac; done; }
before=" $(defunct)"; sleep 2; n=0
for p in $(defunct); do case "$before" in *" $p "*) n=$((n+1));; esac; done; echo "$n"`

// zombies counts the defunct processes each container of each pod sees (a container that shares
// its pod's PID namespace sees the pod's) that are still defunct 2 s later: a process that has
// just ended is defunct until its parent reaps it, which a script's shell does when its command
// substitution ends (one such was counted right after a rolling update). A zombie that stays is
// one that nothing reaps. A container without a shell (the exporter's image is FROM scratch)
// cannot be asked: it is listed in unasked.
func (n *nodeFixture) zombies(namespace, selector string) (counts map[string]int, unasked []string, err error) {
	pods, err := n.pods(namespace, selector)
	if err != nil {
		return nil, nil, err
	}
	counts = map[string]int{}
	for _, p := range pods {
		for _, c := range p.Status.ContainerStatuses {
			out, err := n.kubectl("exec", "-n", namespace, p.Metadata.Name, "-c", c.Name, "--",
				"sh", "-c", zombieCount)
			if err != nil && strings.Contains(err.Error(), `exec: "sh": executable file not found`) {
				unasked = append(unasked, p.Metadata.Name+"/"+c.Name)
				continue
			}
			if err != nil {
				return nil, nil, err
			}
			var count int
			if _, err := fmt.Sscan(strings.TrimSpace(out), &count); err != nil {
				return nil, nil, fmt.Errorf("%s/%s: zombie count %q: %v", p.Metadata.Name, c.Name, out, err)
			}
			counts[p.Metadata.Name+"/"+c.Name] = count
		}
	}
	return counts, unasked, nil
}
