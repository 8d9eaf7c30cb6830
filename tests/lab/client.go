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
	"strings"
	"sync"
	"time"
)

// The client runs as a child process inside its own namespace on the lab's bridge, so every
// connection it makes starts there: two writers, the role monitor and the checker. It reports
// on standard output, one JSON event a line, and takes "stop", "check" and "quit" on input.

// clientConfig is what the lab tells the client (in the environment, as JSON).
type clientConfig struct {
	DNSServer     string   `json:"dnsServer"` // the only resolver the client asks
	Subnets       []string `json:"subnets"`   // the only addresses it dials (see mustBeAllowed)
	Password      string   `json:"password"`
	MasterService string   `json:"masterService"` // DNS name of the endpoint clients use
	HealthService string   `json:"healthService"` // DNS name of HAProxy's health check
	Pods          []string `json:"pods"`          // pod names, in ordinal order
	PodDomain     string   `json:"podDomain"`     // the headless Service's domain
	MasterSet     string   `json:"masterSet"`
	RedisPort     int      `json:"redisPort"`
	// ReadPort, when set, is the master Service's read endpoint, which a reader then reads
	// through (see read).
	ReadPort       int      `json:"readPort,omitempty"`
	SentinelPort   int      `json:"sentinelPort"`
	HealthPort     int      `json:"healthPort"`
	WriteInterval  Duration `json:"writeInterval"`
	SampleInterval Duration `json:"sampleInterval"`
	// CACert, when set, makes every connection TLS, to servers whose certificate this CA signed.
	CACert string `json:"caCert,omitempty"`
	// Cluster, when set, makes the client a Redis Cluster client (clusterclient.go) instead of a
	// Sentinel one.
	Cluster *clusterClientConfig `json:"cluster,omitempty"`
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
	Slot   int    `json:"sl,omitempty"` // a cluster write's slot
	// read (Writer "read"): when it was sent (Unix ns), the oldest of the endpoint writer's
	// acknowledged writes it asked for (Seq is the newest), and those it did not see.
	Sent  int64  `json:"at,omitempty"`
	Lo    int    `json:"lo,omitempty"`
	Holes []int  `json:"h,omitempty"`
	Owner string `json:"o,omitempty"` // the node a cluster write went to last (host:port)
	// sample
	Nodes     map[string]nodeState `json:"n,omitempty"`
	Sentinels map[string]string    `json:"st,omitempty"`
	// Known counts, per sentinel, the other sentinels and the replicas it knows, reaches and may
	// promote (sentinelKnows): it can fail over once it knows them all.
	Known  map[string]int `json:"kn,omitempty"`
	Health int            `json:"hp,omitempty"` // HAProxy's /master: 200 while it routes to a master
	// check
	Check *checkResult `json:"c,omitempty"`
}

type nodeState struct {
	Role   string `json:"r"`
	Master string `json:"m,omitempty"` // a replica's master: its host, or in a cluster its node ID
	Link   string `json:"l,omitempty"`
	// A cluster node's own view (CLUSTER NODES' myself line, CLUSTER INFO): its ID, the slot
	// ranges it serves as a master ("0-5460", "7"), and cluster_state.
	ID    string   `json:"id,omitempty"`
	Slots []string `json:"sl,omitempty"`
	State string   `json:"cs,omitempty"`
}

type checkResult struct {
	Role  string         `json:"role"`  // the role of the server checked: must be master
	Acked map[string]int `json:"acked"` // writer+"/plain" or writer+"/wait1" -> acknowledged writes
	Lost  map[string]int `json:"lost"`  // the same keys -> of those, missing on the master
	// writer -> when the first and the last lost write was acknowledged (Unix ns)
	LostSpan map[string][2]int64 `json:"lostSpan,omitempty"`
	// A cluster's check: the acknowledged writes that could not be read (their shard answered
	// with an error or not at all). LostSeqs are the sequence numbers of the lost writes (of a
	// Sentinel release, the endpoint writer's: the reader reads those).
	Unreadable map[string]int `json:"unreadable,omitempty"`
	LostSeqs   []int          `json:"lostSeqs,omitempty"`
	Error      string         `json:"error,omitempty"`
}

// lost counts a lost write of writer and widens the writer's span of lost writes.
func (res *checkResult) lost(writer string, a ack) {
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

type ack struct {
	wait1 bool
	at    int64 // Unix ns
	seq   int
}

type client struct {
	cfg      clientConfig
	resolver *net.Resolver
	out      *json.Encoder
	outMu    sync.Mutex
	acked    map[string]map[string]ack // writer -> key -> how it was acknowledged
	// readable are the endpoint writer's acknowledged writes in order, which the reader asks for.
	readable []ack
	ackedMu  sync.Mutex
	// passwords are what each part logs in with where the lab changed it (the command
	// "password PART VALUE", in a rotation): a writer or the reader by name, "lab" for the
	// monitor and the check. The others use cfg.Password.
	passwords   map[string]string
	passwordsMu sync.Mutex
}

// passwordOf is the password that part logs in with now.
func (c *client) passwordOf(part string) string {
	c.passwordsMu.Lock()
	defer c.passwordsMu.Unlock()
	if p, ok := c.passwords[part]; ok {
		return p
	}
	return c.cfg.Password
}

// The part of the client that the monitor and the check are, for passwordOf.
const labPart = "lab"

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

// dialName connects to name's first address as part (passwordOf).
func (c *client) dialName(part, name string, port int, timeout time.Duration) (*conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	addrs, err := c.lookup(ctx, name, port)
	if err != nil {
		return nil, err
	}
	return dial(addrs[0], c.passwordOf(part), timeout)
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
	if cfg.CACert != "" {
		var err error
		if dialTLS, err = clientTLS(cfg.CACert); err != nil {
			return fmt.Errorf("lab client: %v", err)
		}
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
		acked:     map[string]map[string]ack{},
		passwords: map[string]string{},
	}
	m := c.sentinelMode()
	if cfg.Cluster != nil {
		m = c.clusterMode()
	}
	stop := make(chan struct{})
	var writers sync.WaitGroup
	for _, w := range m.writers {
		writers.Add(1)
		go func() {
			defer writers.Done()
			w(stop)
		}()
	}
	go m.monitor()
	fmt.Fprintln(os.Stderr, "lab client: running")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch in.Text() {
		case "stop":
			close(stop)
			writers.Wait()
			c.emit(event{Kind: "stopped"})
		case "check":
			res := m.check()
			c.emit(event{Kind: "check", Check: &res})
		case "quit":
			return nil
		default:
			// password PART VALUE: PART logs in with VALUE from its next connection on; a writer
			// or the reader makes that connection at once.
			if f := strings.Fields(in.Text()); len(f) == 3 && f[0] == "password" {
				c.passwordsMu.Lock()
				c.passwords[f[1]] = f[2]
				c.passwordsMu.Unlock()
				c.emit(event{Kind: "password", Writer: f[1]})
			}
		}
	}
	return nil
}

// clientMode is what the client does: its writers (each runs until stop is closed), its monitor
// and its final check.
type clientMode struct {
	writers []func(stop chan struct{})
	monitor func()
	check   func() checkResult
}

// sentinelMode writes through the master Service (HAProxy) and through Sentinel.
func (c *client) sentinelMode() clientMode {
	m := clientMode{monitor: c.monitor, check: c.check}
	for _, w := range []struct {
		name    string
		connect func() (*conn, error)
	}{
		{"endpoint", func() (*conn, error) {
			return c.dialName("endpoint", c.cfg.MasterService, c.cfg.RedisPort, 200*time.Millisecond)
		}},
		{"sentinel", c.dialSentinelMaster},
	} {
		m.writers = append(m.writers, func(stop chan struct{}) { c.write(w.name, w.connect, stop) })
	}
	if c.cfg.ReadPort != 0 {
		m.writers = append(m.writers, c.read)
	}
	return m
}

// The reader asks for the newest readWindow writes that the endpoint writer had acknowledged,
// every readInterval: what a read did not see, and how long ago those writes were acknowledged,
// is how stale it was.
const (
	readWindow   = 200
	readInterval = 50 * time.Millisecond
)

// read reads through the read endpoint until stop: one MGET of the endpoint writer's newest
// acknowledged keys at a time, over a connection it keeps (a new one after an error that is not
// a reply), and reports which of them the read did not see.
func (c *client) read(stop chan struct{}) {
	var rc *conn
	tickUntil(readInterval, stop, &rc, func() {
		c.ackedMu.Lock()
		window := append([]ack(nil), c.readable[max(0, len(c.readable)-readWindow):]...)
		c.ackedMu.Unlock()
		if len(window) == 0 {
			return
		}
		e := event{Kind: "read", Writer: "read", Sent: time.Now().UnixNano(), Lo: window[0].seq, Seq: window[len(window)-1].seq}
		args := []string{"MGET"}
		for _, a := range window {
			args = append(args, fmt.Sprintf("lab:endpoint:%d", a.seq))
		}
		var err error
		if rc != nil && rc.password != c.passwordOf("read") {
			rc.Close()
			rc = nil
		}
		if rc == nil {
			rc, err = c.dialName("read", c.cfg.MasterService, c.cfg.ReadPort, 200*time.Millisecond)
		}
		var reply any
		if err == nil {
			reply, err = rc.do(args...)
		}
		values, ok := reply.([]any)
		if err == nil && (!ok || len(values) != len(window)) {
			err = fmt.Errorf("MGET of %d keys answered %v", len(window), reply)
		}
		if err == nil {
			e.OK = true
			for i, v := range values {
				if v == nil {
					e.Holes = append(e.Holes, window[i].seq)
				}
			}
		} else {
			e.Err = err.Error()
			if rc != nil && !isReply(err) {
				rc.Close()
				rc = nil
			}
		}
		c.emit(e)
	})
}

// tickUntil calls step every interval until stop is closed, then closes the connection that rc
// holds (the caller's, which step keeps or replaces).
func tickUntil(interval time.Duration, stop chan struct{}, rc **conn, step func()) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			if *rc != nil {
				(*rc).Close()
			}
			return
		case <-tick.C:
			step()
		}
	}
}

// write writes a new key every interval through connect's server until stop, and reports each.
// A key is acknowledged when SET answers OK, and acknowledged with WAIT 1 when a replica
// confirmed it within 100 ms.
func (c *client) write(name string, connect func() (*conn, error), stop chan struct{}) {
	c.ackedMu.Lock()
	c.acked[name] = map[string]ack{}
	c.ackedMu.Unlock()
	var rc *conn
	seq := 0
	tickUntil(time.Duration(c.cfg.WriteInterval), stop, &rc, func() {
		seq++
		key := fmt.Sprintf("lab:%s:%d", name, seq)
		e := event{Kind: "write", Writer: name, Seq: seq}
		var err error
		if rc != nil && rc.password != c.passwordOf(name) {
			rc.Close()
			rc = nil
		}
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
			a := ack{wait1: e.Wait1, at: time.Now().UnixNano(), seq: seq}
			c.ackedMu.Lock()
			c.acked[name][key] = a
			if name == "endpoint" {
				c.readable = append(c.readable, a)
			}
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
	})
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
		s, err := dial(a, c.passwordOf("sentinel"), 200*time.Millisecond)
		if err != nil {
			continue
		}
		reply, err := s.do("SENTINEL", "get-master-addr-by-name", c.cfg.MasterSet)
		s.Close()
		if hp, ok := reply.([]any); err == nil && ok && len(hp) == 2 {
			port, _ := strconv.Atoi(fmt.Sprint(hp[1]))
			return c.dialName("sentinel", fmt.Sprint(hp[0]), port, 200*time.Millisecond)
		}
	}
	return nil, fmt.Errorf("no sentinel named a master")
}

// probe asks one server of a pod something once per sample, over a connection it keeps. query
// returns what to record in the sample.
type probe struct {
	pod   string
	port  int
	query func(*conn) (func(*event), error)
	conn  *conn
}

// monitor reports every node's replication state, every sentinel's master and HAProxy's health
// once per sample interval.
func (c *client) monitor() {
	var probes []*probe
	for _, pod := range c.cfg.Pods {
		probes = append(probes,
			&probe{pod: pod, port: c.cfg.RedisPort, query: func(rc *conn) (func(*event), error) {
				f, err := rc.info("replication")
				if err != nil {
					return nil, err
				}
				return func(e *event) {
					e.Nodes[pod] = nodeState{Role: f["role"], Master: f["master_host"], Link: f["master_link_status"]}
				}, nil
			}},
			&probe{pod: pod, port: c.cfg.SentinelPort, query: func(rc *conn) (func(*event), error) {
				reply, err := rc.do("SENTINEL", "get-master-addr-by-name", c.cfg.MasterSet)
				master := ""
				if hp, ok := reply.([]any); err == nil && ok && len(hp) == 2 {
					master = fmt.Sprint(hp[0])
				} else if err != nil {
					return nil, err
				}
				known, err := sentinelKnows(rc, c.cfg.MasterSet)
				if err != nil {
					return nil, err
				}
				return func(e *event) {
					e.Sentinels[pod] = master
					e.Known[pod] = known
				}, nil
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
	health := func() func(*event) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		addrs, err := c.lookup(ctx, c.cfg.HealthService, c.cfg.HealthPort)
		if err != nil {
			return nil
		}
		resp, err := httpClient.Get("http://" + addrs[0] + "/master")
		if err != nil {
			return nil
		}
		resp.Body.Close()
		return func(e *event) { e.Health = resp.StatusCode }
	}
	c.sampleEvery(probes, health)
}

// sentinelKnows counts the other sentinels a sentinel knows and the replicas it knows, reaches
// (flags without s_down and disconnected) and may promote (a priority other than 0, which our
// replicas get once they have synced and the sentinel has read their INFO since).
func sentinelKnows(rc *conn, masterSet string) (int, error) {
	reply, err := rc.do("SENTINEL", "MASTER", masterSet)
	if err != nil {
		return 0, err
	}
	fields, _ := reply.([]any)
	known := 0
	for i := 0; i+1 < len(fields); i += 2 {
		if fmt.Sprint(fields[i]) == "num-other-sentinels" {
			known, _ = strconv.Atoi(fmt.Sprint(fields[i+1]))
		}
	}
	if reply, err = rc.do("SENTINEL", "REPLICAS", masterSet); err != nil {
		return 0, err
	}
	replicas, _ := reply.([]any)
	for _, r := range replicas {
		fields, _ := r.([]any)
		f := map[string]string{}
		for i := 0; i+1 < len(fields); i += 2 {
			f[fmt.Sprint(fields[i])] = fmt.Sprint(fields[i+1])
		}
		if !strings.Contains(f["flags"], "s_down") && !strings.Contains(f["flags"], "disconnected") && f["slave-priority"] != "0" {
			known++
		}
	}
	return known, nil
}

// sampleEvery runs every probe and every extra at once, once per sample interval, and reports
// what they found as one sample. A probe that fails records nothing: the node did not answer.
func (c *client) sampleEvery(probes []*probe, extras ...func() func(*event)) {
	timeout := time.Duration(c.cfg.SampleInterval) * 8 / 10
	tick := time.NewTicker(time.Duration(c.cfg.SampleInterval))
	defer tick.Stop()
	for range tick.C {
		e := event{Kind: "sample", Nodes: map[string]nodeState{}, Sentinels: map[string]string{}, Known: map[string]int{}}
		var mu sync.Mutex
		var wg sync.WaitGroup
		record := func(apply func(*event)) {
			if apply == nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			apply(&e)
		}
		for _, p := range probes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var err error
				if p.conn == nil {
					p.conn, err = c.dialName(labPart, c.fqdn(p.pod), p.port, timeout)
				}
				var apply func(*event)
				if err == nil {
					p.conn.timeout = timeout
					apply, err = p.query(p.conn)
				}
				if err != nil {
					if p.conn != nil {
						p.conn.Close()
						p.conn = nil
					}
					return
				}
				record(apply)
			}()
		}
		for _, extra := range extras {
			wg.Add(1)
			go func() {
				defer wg.Done()
				record(extra())
			}()
		}
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
				res.lost(writer, keys[key])
				if writer == "endpoint" {
					res.LostSeqs = append(res.LostSeqs, keys[key].seq)
				}
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
