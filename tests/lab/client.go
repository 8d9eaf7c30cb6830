package lab

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"
)

// The client runs as a child process inside its own namespace on the lab's bridge, so every
// connection it makes starts there: two writers, the role monitor and the checker. It reports
// on standard output, one JSON event a line, and takes "stop", "check" and "quit" on input.

// clientConfig is what the lab tells the client (in the environment, as JSON).
type clientConfig struct {
	DNSServer      string   `json:"dnsServer"` // the only resolver the client asks
	Subnets        []string `json:"subnets"`   // the only addresses it dials (see mustBeAllowed)
	Password       string   `json:"password"`
	MasterService  string   `json:"masterService"` // DNS name of the endpoint clients use
	HealthService  string   `json:"healthService"` // DNS name of HAProxy's health check
	Pods           []string `json:"pods"`          // pod names, in ordinal order
	PodDomain      string   `json:"podDomain"`     // the headless Service's domain
	MasterSet      string   `json:"masterSet"`
	RedisPort      int      `json:"redisPort"`
	SentinelPort   int      `json:"sentinelPort"`
	HealthPort     int      `json:"healthPort"`
	WriteInterval  Duration `json:"writeInterval"`
	SampleInterval Duration `json:"sampleInterval"`
}

// Duration is a time.Duration that reads and writes JSON as a Go duration string.
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	*d = Duration(v)
	return err
}

// event is one line of the client's output.
type event struct {
	Kind string `json:"k"`
	Time int64  `json:"t"`
	// write
	Writer string `json:"w,omitempty"`
	Seq    int    `json:"s,omitempty"`
	OK     bool   `json:"ok,omitempty"`
	Wait1  bool   `json:"a,omitempty"`
	Err    string `json:"e,omitempty"`
	// sample
	Nodes     map[string]nodeState `json:"n,omitempty"`
	Sentinels map[string]string    `json:"st,omitempty"`
	Health    int                  `json:"hp,omitempty"` // HAProxy's /master: 200 while it routes to a master
	// check
	Check *checkResult `json:"c,omitempty"`
}

type nodeState struct {
	Role   string `json:"r"`
	Master string `json:"m,omitempty"`
	Link   string `json:"l,omitempty"`
}

type checkResult struct {
	Role  string         `json:"role"`  // the role of the server checked: must be master
	Acked map[string]int `json:"acked"` // writer+"/plain" or writer+"/wait1" -> acknowledged writes
	Lost  map[string]int `json:"lost"`  // the same keys -> of those, missing on the master
	// writer -> when the first and the last lost write was acknowledged (Unix ns)
	LostSpan map[string][2]int64 `json:"lostSpan,omitempty"`
	Error    string              `json:"error,omitempty"`
}

type ack struct {
	wait1 bool
	at    int64 // Unix ns
}

type client struct {
	cfg      clientConfig
	resolver *net.Resolver
	out      *json.Encoder
	outMu    sync.Mutex
	acked    map[string]map[string]ack // writer -> key -> how it was acknowledged
	ackedMu  sync.Mutex
}

func (c *client) emit(e event) {
	e.Time = time.Now().UnixNano()
	c.outMu.Lock()
	defer c.outMu.Unlock()
	_ = c.out.Encode(e)
}

// lookup resolves a name through the configured DNS server only.
func (c *client) lookup(ctx context.Context, name string, port int) ([]string, error) {
	addrs, err := c.resolver.LookupHost(ctx, name)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, a := range addrs {
		out = append(out, net.JoinHostPort(a, strconv.Itoa(port)))
	}
	return out, nil
}

func (c *client) dialName(name string, port int, timeout time.Duration) (*conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	addrs, err := c.lookup(ctx, name, port)
	if err != nil {
		return nil, err
	}
	return dial(addrs[0], c.cfg.Password, timeout)
}

func (c *client) fqdn(pod string) string { return pod + "." + c.cfg.PodDomain }

// runClient is the client's main.
func runClient() error {
	var cfg clientConfig
	if err := json.Unmarshal([]byte(os.Getenv(clientEnv)), &cfg); err != nil {
		return fmt.Errorf("lab client: bad config: %v", err)
	}
	if err := allowSubnets(cfg.Subnets); err != nil {
		return fmt.Errorf("lab client: %v", err)
	}
	dnsServer := net.JoinHostPort(cfg.DNSServer, "53")
	if err := mustBeAllowed(dnsServer); err != nil {
		return fmt.Errorf("lab client: %v", err)
	}
	c := &client{
		cfg: cfg,
		out: json.NewEncoder(os.Stdout),
		resolver: &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "udp", dnsServer)
		}},
		acked: map[string]map[string]ack{},
	}
	stop := make(chan struct{})
	var writers sync.WaitGroup
	for _, w := range []struct {
		name    string
		connect func() (*conn, error)
	}{
		{"endpoint", func() (*conn, error) { return c.dialName(cfg.MasterService, cfg.RedisPort, 200*time.Millisecond) }},
		{"sentinel", c.dialSentinelMaster},
	} {
		writers.Add(1)
		go func() {
			defer writers.Done()
			c.write(w.name, w.connect, stop)
		}()
	}
	go c.monitor()
	fmt.Fprintln(os.Stderr, "lab client: running")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch in.Text() {
		case "stop":
			close(stop)
			writers.Wait()
			c.emit(event{Kind: "stopped"})
		case "check":
			res := c.check()
			c.emit(event{Kind: "check", Check: &res})
		case "quit":
			return nil
		}
	}
	return nil
}

// write writes a new key every interval through connect's server until stop, and reports each.
// A key is acknowledged when SET answers OK, and acknowledged with WAIT 1 when a replica
// confirmed it within 100 ms.
func (c *client) write(name string, connect func() (*conn, error), stop chan struct{}) {
	tick := time.NewTicker(time.Duration(c.cfg.WriteInterval))
	defer tick.Stop()
	c.ackedMu.Lock()
	c.acked[name] = map[string]ack{}
	c.ackedMu.Unlock()
	var rc *conn
	for seq := 1; ; seq++ {
		select {
		case <-stop:
			if rc != nil {
				rc.Close()
			}
			return
		case <-tick.C:
		}
		key := fmt.Sprintf("lab:%s:%d", name, seq)
		e := event{Kind: "write", Writer: name, Seq: seq}
		var err error
		if rc == nil {
			rc, err = connect()
		}
		if err == nil {
			_, err = rc.do("SET", key, strconv.Itoa(seq))
		}
		if err == nil {
			e.OK = true
			var n any
			n, err = rc.do("WAIT", "1", "100")
			e.Wait1 = err == nil && n.(int64) >= 1
			c.ackedMu.Lock()
			c.acked[name][key] = ack{wait1: e.Wait1, at: time.Now().UnixNano()}
			c.ackedMu.Unlock()
		}
		if err != nil {
			e.Err = err.Error()
			if rc != nil && !isReply(err) {
				rc.Close()
				rc = nil
			}
			if rc != nil && name == "sentinel" {
				// A sentinel-aware client asks the sentinels again after an error reply
				// (READONLY, NOREPLICAS) instead of insisting on the same server.
				rc.Close()
				rc = nil
			}
		}
		c.emit(e)
	}
}

// dialSentinelMaster asks the sentinels (through the headless Service's name, one after the
// other) for the master's address and connects to it, like a Sentinel-aware client.
func (c *client) dialSentinelMaster() (*conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	addrs, err := c.lookup(ctx, c.cfg.PodDomain, c.cfg.SentinelPort)
	if err != nil {
		return nil, err
	}
	for _, a := range addrs {
		s, err := dial(a, c.cfg.Password, 200*time.Millisecond)
		if err != nil {
			continue
		}
		reply, err := s.do("SENTINEL", "get-master-addr-by-name", c.cfg.MasterSet)
		s.Close()
		if hp, ok := reply.([]any); err == nil && ok && len(hp) == 2 {
			port, _ := strconv.Atoi(fmt.Sprint(hp[1]))
			return c.dialName(fmt.Sprint(hp[0]), port, 200*time.Millisecond)
		}
	}
	return nil, fmt.Errorf("no sentinel named a master")
}

// monitor reports every node's replication state, every sentinel's master and HAProxy's health
// once per sample interval.
func (c *client) monitor() {
	type probe struct {
		pod   string
		port  int
		query func(*conn) (any, error)
		conn  *conn
	}
	var probes []*probe
	for _, pod := range c.cfg.Pods {
		probes = append(probes,
			&probe{pod: pod, port: c.cfg.RedisPort, query: func(rc *conn) (any, error) {
				f, err := rc.info("replication")
				if err != nil {
					return nil, err
				}
				return nodeState{Role: f["role"], Master: f["master_host"], Link: f["master_link_status"]}, nil
			}},
			&probe{pod: pod, port: c.cfg.SentinelPort, query: func(rc *conn) (any, error) {
				reply, err := rc.do("SENTINEL", "get-master-addr-by-name", c.cfg.MasterSet)
				if hp, ok := reply.([]any); err == nil && ok && len(hp) == 2 {
					return fmt.Sprint(hp[0]), nil
				}
				return "", err
			}})
	}
	timeout := time.Duration(c.cfg.SampleInterval) * 8 / 10
	httpClient := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		if err := mustBeAllowed(addr); err != nil {
			return nil, err
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}}
	tick := time.NewTicker(time.Duration(c.cfg.SampleInterval))
	defer tick.Stop()
	for range tick.C {
		e := event{Kind: "sample", Nodes: map[string]nodeState{}, Sentinels: map[string]string{}}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, p := range probes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var err error
				if p.conn == nil {
					p.conn, err = c.dialName(c.fqdn(p.pod), p.port, timeout)
				}
				var v any
				if err == nil {
					p.conn.timeout = timeout
					v, err = p.query(p.conn)
				}
				if err != nil {
					if p.conn != nil {
						p.conn.Close()
						p.conn = nil
					}
					return
				}
				mu.Lock()
				defer mu.Unlock()
				switch v := v.(type) {
				case nodeState:
					e.Nodes[p.pod] = v
				case string:
					e.Sentinels[p.pod] = v
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			addrs, err := c.lookup(ctx, c.cfg.HealthService, c.cfg.HealthPort)
			if err != nil {
				return
			}
			resp, err := httpClient.Get("http://" + addrs[0] + "/master")
			if err != nil {
				return
			}
			resp.Body.Close()
			mu.Lock()
			e.Health = resp.StatusCode
			mu.Unlock()
		}()
		wg.Wait()
		c.emit(e)
	}
}

// check looks up every acknowledged key on the master the sentinels name.
func (c *client) check() checkResult {
	res := checkResult{Acked: map[string]int{}, Lost: map[string]int{}, LostSpan: map[string][2]int64{}}
	rc, err := c.dialSentinelMaster()
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer rc.Close()
	rc.timeout = 5 * time.Second
	if f, err := rc.info("replication"); err == nil {
		res.Role = f["role"]
	}
	c.ackedMu.Lock()
	defer c.ackedMu.Unlock()
	for writer, keys := range c.acked {
		var batch []string
		flush := func() {
			if len(batch) == 0 {
				return
			}
			reply, err := rc.do(append([]string{"MGET"}, batch...)...)
			values, ok := reply.([]any)
			if err != nil || !ok || len(values) != len(batch) {
				res.Error = fmt.Sprintf("MGET: %v", err)
			}
			for i, key := range batch {
				if i < len(values) && values[i] != nil {
					continue
				}
				a := keys[key]
				res.Lost[writer+"/plain"]++
				if a.wait1 {
					res.Lost[writer+"/wait1"]++
				}
				span, seen := res.LostSpan[writer]
				if !seen || a.at < span[0] {
					span[0] = a.at
				}
				span[1] = max(span[1], a.at)
				res.LostSpan[writer] = span
			}
			batch = batch[:0]
		}
		for key, a := range keys {
			res.Acked[writer+"/plain"]++
			if a.wait1 {
				res.Acked[writer+"/wait1"]++
			}
			batch = append(batch, key)
			if len(batch) == 500 {
				flush()
			}
		}
		flush()
	}
	return res
}
