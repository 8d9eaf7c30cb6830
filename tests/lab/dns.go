package lab

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"

	"golang.org/x/net/dns/dnsmessage"
)

// The lab's cluster DNS: A records for the pods that exist now, like CoreDNS for a headless
// Service with publishNotReadyAddresses. It runs as a child process inside the bridge's
// namespace and takes its records on standard input: "set NAME IP[,IP...]" or "del NAME".

// dnsTTL is CoreDNS's default TTL for Service and pod records.
const dnsTTL = 5

type dnsServer struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	stdin *bufio.Writer
	names map[string][]string
}

// startDNS runs this test binary again as the DNS server inside namespace ns.
func startDNS(ns string) (*dnsServer, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("nsenter", "--net=/run/netns/"+ns, "--", self)
	cmd.Env = append(os.Environ(), roleEnv+"="+roleDNS)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
		return nil, fmt.Errorf("lab: dns server did not start: %q %v", line, err)
	}
	return &dnsServer{cmd: cmd, stdin: bufio.NewWriter(in), names: map[string][]string{}}, nil
}

func (d *dnsServer) set(name string, addrs ...string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(addrs) == 0 {
		delete(d.names, name)
		fmt.Fprintf(d.stdin, "del %s\n", name)
	} else {
		d.names[name] = addrs
		fmt.Fprintf(d.stdin, "set %s %s\n", name, strings.Join(addrs, ","))
	}
	return d.stdin.Flush()
}

func (d *dnsServer) stop() {
	_ = d.cmd.Process.Kill()
	_ = d.cmd.Wait()
}

// serveDNS is the DNS server's main: it answers on the bridge address, port 53.
func serveDNS() error {
	pc, err := net.ListenPacket("udp", net.JoinHostPort(bridgeAddr, "53"))
	if err != nil {
		return err
	}
	var mu sync.RWMutex
	records := map[string][]netip.Addr{}
	go func() {
		in := bufio.NewScanner(os.Stdin)
		for in.Scan() {
			f := strings.Fields(in.Text())
			mu.Lock()
			switch {
			case len(f) == 3 && f[0] == "set":
				var addrs []netip.Addr
				for _, a := range strings.Split(f[2], ",") {
					addrs = append(addrs, netip.MustParseAddr(a))
				}
				records[strings.ToLower(f[1])+"."] = addrs
			case len(f) == 2 && f[0] == "del":
				delete(records, strings.ToLower(f[1])+".")
			}
			mu.Unlock()
		}
		os.Exit(0) // the lab closed our input: it is done
	}()
	fmt.Println("ready")
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return err
		}
		var msg dnsmessage.Message
		if err := msg.Unpack(buf[:n]); err != nil || len(msg.Questions) != 1 {
			continue
		}
		q := msg.Questions[0]
		mu.RLock()
		addrs, known := records[strings.ToLower(q.Name.String())]
		mu.RUnlock()
		reply := dnsmessage.Message{
			Header:    dnsmessage.Header{ID: msg.ID, Response: true, Authoritative: true, RecursionDesired: msg.RecursionDesired},
			Questions: msg.Questions,
		}
		if !known {
			reply.RCode = dnsmessage.RCodeNameError
		} else if q.Type == dnsmessage.TypeA {
			for _, a := range addrs {
				reply.Answers = append(reply.Answers, dnsmessage.Resource{
					Header: dnsmessage.ResourceHeader{Name: q.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: dnsTTL},
					Body:   &dnsmessage.AResource{A: a.As4()},
				})
			}
		}
		if packed, err := reply.Pack(); err == nil {
			_, _ = pc.WriteTo(packed, from)
		}
	}
}
