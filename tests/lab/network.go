package lab

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
)

// The lab's network: one private /24 that exists only on a bridge inside a network namespace
// the lab creates. No namespace of the lab has a default route and none is linked to the host's
// namespace, so a packet addressed anywhere else has no way out.
var labSubnet = netip.MustParsePrefix("10.123.0.0/24")

const (
	bridgeAddr = "10.123.0.2" // the bridge namespace, where the lab's DNS server answers
	firstPodIP = 10           // pods get 10.123.0.10, .11, ... (a re-created pod gets a new one)
)

// allowedSubnets are the only addresses this process dials: the lab's subnet, or what the client
// was told (the real node's pod and Service ranges, which exist only in its namespace).
var allowedSubnets = []netip.Prefix{labSubnet}

// allowSubnets replaces allowedSubnets with the given prefixes; it refuses an empty list.
func allowSubnets(prefixes []string) error {
	if len(prefixes) == 0 {
		return fmt.Errorf("no subnets to dial: the client must be told which")
	}
	var out []netip.Prefix
	for _, p := range prefixes {
		prefix, err := netip.ParsePrefix(p)
		if err != nil {
			return fmt.Errorf("subnet %q: %v", p, err)
		}
		out = append(out, prefix)
	}
	allowedSubnets = out
	return nil
}

// mustBeAllowed refuses to dial anything outside allowedSubnets: the namespaces have no route
// out anyway, and this makes a mistake loud instead of a time-out.
func mustBeAllowed(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	ip, err := netip.ParseAddr(host)
	if err == nil {
		for _, p := range allowedSubnets {
			if p.Contains(ip) {
				return nil
			}
		}
	}
	return fmt.Errorf("lab: refusing to dial %s: only addresses in %v are allowed", addr, allowedSubnets)
}

// network is the set of namespaces and links of one lab run.
type network struct {
	prefix     string     // every namespace and link name starts with it
	bridge     string     // the bridge's namespace
	mu         sync.Mutex // pods come and go concurrently
	namespaces []string
	nextHost   int
}

func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func newNetwork() (*network, error) {
	n := &network{prefix: fmt.Sprintf("rsl%d", os.Getpid()%100000), nextHost: firstPodIP}
	n.bridge = n.prefix + "-br"
	if err := n.addNamespace(n.bridge); err != nil {
		return n, err
	}
	for _, args := range [][]string{
		// A fixed address: by default a bridge takes the lowest of its ports' addresses, so a new
		// pod could change it under every other pod's ARP cache and cut them off from the DNS
		// server for up to 30 s.
		{"-n", n.bridge, "link", "add", "br0", "address", "02:00:0a:7b:00:02", "type", "bridge"},
		{"-n", n.bridge, "addr", "add", bridgeAddr + "/24", "dev", "br0"},
		{"-n", n.bridge, "link", "set", "br0", "up"},
	} {
		if err := ip(args...); err != nil {
			return n, err
		}
	}
	return n, nil
}

func (n *network) addNamespace(name string) error {
	if err := ip("netns", "add", name); err != nil {
		return err
	}
	n.mu.Lock()
	n.namespaces = append(n.namespaces, name)
	n.mu.Unlock()
	return ip("-n", name, "link", "set", "lo", "up")
}

// addHost creates a namespace with one interface on the bridge and a fresh address, and returns
// the namespace and the address. Like a pod's, the address is new each time.
func (n *network) addHost(name string) (ns, addr string, err error) {
	n.mu.Lock()
	host := n.nextHost
	n.nextHost++
	n.mu.Unlock()
	if host > 250 {
		return "", "", fmt.Errorf("lab: out of addresses in %s", labSubnet)
	}
	ns = fmt.Sprintf("%s-%s-%d", n.prefix, name, host)
	addr = fmt.Sprintf("10.123.0.%d", host)
	veth := fmt.Sprintf("v%d", host)
	if err := n.addNamespace(ns); err != nil {
		return "", "", err
	}
	for _, args := range [][]string{
		{"-n", n.bridge, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns},
		{"-n", n.bridge, "link", "set", veth, "master", "br0", "up"},
		{"-n", ns, "addr", "add", addr + "/24", "dev", "eth0"},
		{"-n", ns, "link", "set", "eth0", "up"},
	} {
		if err := ip(args...); err != nil {
			return "", "", err
		}
	}
	routes, err := exec.Command("ip", "-n", ns, "route", "show", "default").Output()
	if err != nil || len(strings.TrimSpace(string(routes))) > 0 {
		return "", "", fmt.Errorf("lab: namespace %s must have no default route (got %q, %v)", ns, routes, err)
	}
	return ns, addr, nil
}

// removeHost deletes a host's namespace; its veth goes with it.
func (n *network) removeHost(ns string) error {
	n.mu.Lock()
	for i, name := range n.namespaces {
		if name == ns {
			n.namespaces = append(n.namespaces[:i], n.namespaces[i+1:]...)
			break
		}
	}
	n.mu.Unlock()
	killNamespace(ns)
	return ip("netns", "del", ns)
}

// blackhole drops, inside namespace ns, every packet to addr (one direction of a partition).
func blackhole(ns, addr string, on bool) error {
	verb := "add"
	if !on {
		verb = "del"
	}
	return ip("-n", ns, "route", verb, "blackhole", addr+"/32")
}

// killNamespace kills every process still running inside namespace ns.
func killNamespace(ns string) {
	out, _ := exec.Command("ip", "netns", "pids", ns).Output()
	for _, pid := range strings.Fields(string(out)) {
		_ = exec.Command("kill", "-9", pid).Run()
	}
}

// close kills what still runs in the lab's namespaces and deletes them all.
func (n *network) close() error {
	var errs []string
	for i := len(n.namespaces) - 1; i >= 0; i-- {
		killNamespace(n.namespaces[i])
	}
	for i := len(n.namespaces) - 1; i >= 0; i-- {
		if err := ip("netns", "del", n.namespaces[i]); err != nil {
			errs = append(errs, err.Error())
		}
	}
	n.namespaces = nil
	if len(errs) > 0 {
		return fmt.Errorf("lab: cleanup: %s", strings.Join(errs, "; "))
	}
	return nil
}
