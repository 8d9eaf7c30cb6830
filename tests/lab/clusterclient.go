package lab

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The client's cluster mode: what a cluster-aware client library does, small enough to read. It
// learns which node serves each slot from CLUSTER SLOTS of a seed (the seed Service's name, every
// address it resolves to, in random order), follows MOVED and ASK, and re-reads the map after a
// MOVED, a connection error and a CLUSTERDOWN. Nodes are named as they announce themselves: our release
// announces stable DNS names, which the client resolves through the lab's DNS server; the
// baseline announces IP addresses. Either way it dials only inside the lab (mustBeAllowed).

// clusterClientConfig is what the cluster mode needs besides clientConfig.
type clusterClientConfig struct {
	SeedService string `json:"seedService"` // DNS name of the Service in front of every node
	// Lanes is how many writers run at once, each on its own part of the slot space; the lab
	// gives the number of shards, so that a shard that stops answering holds up only its lane.
	Lanes int `json:"lanes"`
}

// clusterSlots is the size of Redis Cluster's slot space.
const clusterSlots = 16384

// clusterWriter is the writer name of every write in cluster mode.
const clusterWriter = "cluster"

// Timing of the cluster client.
const (
	clusterTimeout = 200 * time.Millisecond // a dial or a command, as the Sentinel writers
	// minRefresh spaces the re-reads of the slot map: a lane whose shard is down fails every
	// write, and would otherwise ask a seed for the map every writeInterval.
	minRefresh   = 100 * time.Millisecond
	maxRedirects = 5
	// laneMargin keeps a lane this many slots away from the edge of its part of the slot space:
	// the release and redis-cli split 16384 slots in three a slot apart (10922 is the third
	// shard's for one and the second's for the other), and a lane that wrote to two shards would
	// stop when either stops.
	laneMargin = 2
)

// crc16 is the CRC-16 (XMODEM) that Redis Cluster hashes keys with.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// keySlot is the slot of key: of its hash tag, the part between the first { and the next }, when
// that is not empty.
func keySlot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return int(crc16(key)) % clusterSlots
}

// slotTags are, for every slot, the shortest decimal number that hashes to it: a key with that
// hash tag lands in that slot, so the writers choose the slot first and then the key.
var slotTags = sync.OnceValue(func() []string {
	tags := make([]string, clusterSlots)
	for n, left := 0, clusterSlots; left > 0; n++ {
		tag := strconv.Itoa(n)
		if s := keySlot(tag); tags[s] == "" {
			tags[s] = tag
			left--
		}
	}
	return tags
})

// clusterKey is the key of write seq, in slot.
func clusterKey(slot, seq int) string {
	return fmt.Sprintf("lab:{%s}:%d", slotTags()[slot], seq)
}

// laneSlots is the part of the slot space that lane g of lanes writes to: [lo, hi).
func laneSlots(g, lanes int) (lo, hi int) {
	lo, hi = g*clusterSlots/lanes, (g+1)*clusterSlots/lanes
	if g > 0 {
		lo += laneMargin
	}
	if g < lanes-1 {
		hi -= laneMargin
	}
	return lo, hi
}

// laneStride steps a lane through every slot of a part of width slots, far apart from one write
// to the next, and soon back to every stretch of them: a step of width times the golden ratio's
// fraction visits any L slots in a row within about 2 width/L writes, wherever they are (a
// Weyl sequence). A shard that serves only some stretches of a lane's part (slots moved by a
// rebalance) is written to every few writes, not once per sweep. Coprime with width, the step
// visits each slot once per round.
func laneStride(width int) int {
	gcd := func(a, b int) int {
		for b != 0 {
			a, b = b, a%b
		}
		return a
	}
	stride := int(float64(width) * (math.Sqrt(5) - 1) / 2)
	for gcd(stride, width) != 1 {
		stride++
	}
	return stride
}

// router is the client's map of the cluster: which node serves each slot.
type router struct {
	c         *client
	mu        sync.Mutex
	owners    []string // by slot: host:port of the master as last learnt, "" when none
	refreshMu sync.Mutex
	refreshed time.Time
}

func (r *router) owner(slot int) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.owners[slot]
}

func (r *router) setOwner(slot int, addr string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.owners[slot] = addr
}

// refresh reads the slot map again from the first seed that answers CLUSTER SLOTS with slots;
// one refresh at a time, and none within minRefresh of the last.
func (r *router) refresh() {
	r.refreshMu.Lock()
	defer r.refreshMu.Unlock()
	if time.Since(r.refreshed) < minRefresh {
		return
	}
	defer func() { r.refreshed = time.Now() }()
	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	seeds, err := r.c.lookup(ctx, r.c.cfg.Cluster.SeedService, r.c.cfg.RedisPort)
	if err != nil {
		return
	}
	rand.Shuffle(len(seeds), func(i, j int) { seeds[i], seeds[j] = seeds[j], seeds[i] })
	for _, seed := range seeds {
		rc, err := dial(seed, r.c.cfg.Password, clusterTimeout)
		if err != nil {
			continue
		}
		reply, err := rc.do("CLUSTER", "SLOTS")
		rc.Close()
		if owners := parseClusterSlots(reply); err == nil && owners != nil {
			r.mu.Lock()
			r.owners = owners
			r.mu.Unlock()
			return
		}
	}
}

// parseClusterSlots turns a CLUSTER SLOTS reply into the master of every slot, or nil when it
// names none: [[first, last, [host, port, id, ...], replicas...], ...].
func parseClusterSlots(reply any) []string {
	ranges, ok := reply.([]any)
	if !ok || len(ranges) == 0 {
		return nil
	}
	owners := make([]string, clusterSlots)
	for _, rg := range ranges {
		f, ok := rg.([]any)
		if !ok || len(f) < 3 {
			return nil
		}
		first, ok1 := f[0].(int64)
		last, ok2 := f[1].(int64)
		master, ok3 := f[2].([]any)
		if !ok1 || !ok2 || !ok3 || len(master) < 2 || first < 0 || last >= clusterSlots {
			return nil
		}
		addr := net.JoinHostPort(fmt.Sprint(master[0]), fmt.Sprint(master[1]))
		for s := first; s <= last; s++ {
			owners[s] = addr
		}
	}
	return owners
}

// redirection parses a MOVED or ASK error: its kind and host:port, or "" when err is neither. An
// empty host means the host that answered (Redis writes it so when it does not know its own).
func redirection(err error, from string) (kind, addr string) {
	reply, ok := err.(errReply)
	if !ok {
		return "", ""
	}
	f := strings.Fields(string(reply))
	if len(f) != 3 || (f[0] != "MOVED" && f[0] != "ASK") {
		return "", ""
	}
	host, port, err := net.SplitHostPort(f[2])
	if err != nil {
		return "", ""
	}
	if host == "" {
		host, _, _ = net.SplitHostPort(from)
	}
	return f[0], net.JoinHostPort(host, port)
}

// lane is one goroutine's use of the router: its own connections, one per node.
type lane struct {
	r       *router
	timeout time.Duration
	conns   map[string]*conn
}

func (r *router) lane(timeout time.Duration) *lane {
	return &lane{r: r, timeout: timeout, conns: map[string]*conn{}}
}

// conn returns the lane's connection to addr, dialled when needed; a name is resolved through
// the lab's DNS server.
func (l *lane) conn(addr string) (*conn, error) {
	if rc := l.conns[addr]; rc != nil {
		return rc, nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	target := addr
	if _, err := netip.ParseAddr(host); err != nil {
		ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
		defer cancel()
		p, _ := strconv.Atoi(port)
		addrs, err := l.r.c.lookup(ctx, host, p)
		if err != nil {
			return nil, err
		}
		target = addrs[0]
	}
	rc, err := dial(target, l.r.c.cfg.Password, l.timeout)
	if err != nil {
		return nil, err
	}
	l.conns[addr] = rc
	return rc, nil
}

func (l *lane) drop(addr string) {
	if rc := l.conns[addr]; rc != nil {
		rc.Close()
		delete(l.conns, addr)
	}
}

func (l *lane) close() {
	for addr := range l.conns {
		l.drop(addr)
	}
}

// do sends a command about a key of slot to the node that serves it, following redirections,
// and returns the reply and the node that answered or failed last.
func (l *lane) do(slot int, args ...string) (any, string, error) {
	addr := l.r.owner(slot)
	if addr == "" {
		l.r.refresh()
		if addr = l.r.owner(slot); addr == "" {
			return nil, "", fmt.Errorf("no node serves slot %d", slot)
		}
	}
	asking := false
	for hops := 0; ; hops++ {
		// No connection (the node is gone, or refuses the password, as our release's node with
		// an empty disk does) is a connection error, whatever the node answered.
		rc, err := l.conn(addr)
		if err != nil {
			l.r.refresh()
			return nil, addr, err
		}
		if asking {
			if _, err := rc.do("ASKING"); err != nil {
				l.drop(addr)
				return nil, addr, err
			}
		}
		reply, err := rc.do(args...)
		if err == nil {
			return reply, addr, nil
		}
		if !isReply(err) {
			l.drop(addr)
			l.r.refresh()
			return nil, addr, err
		}
		if strings.HasPrefix(err.Error(), "CLUSTERDOWN") {
			// This node thinks its cluster is down (a node cut off from the majority does);
			// another one may know of a new master for the slot, as go-redis assumes too.
			l.r.refresh()
			return nil, addr, err
		}
		kind, target := redirection(err, addr)
		if kind == "" || hops == maxRedirects {
			return nil, addr, err
		}
		if kind == "MOVED" {
			l.r.setOwner(slot, target)
			go l.r.refresh()
		}
		asking, addr = kind == "ASK", target
	}
}

// clusterMode writes through a router in one lane per shard, samples every node's view of the
// cluster, and checks every acknowledged write through the cluster.
func (c *client) clusterMode() clientMode {
	r := &router{c: c, owners: make([]string, clusterSlots)}
	c.acked[clusterWriter] = map[string]ack{}
	var seq atomic.Int64
	m := clientMode{monitor: c.monitorCluster, check: func() checkResult { return c.checkCluster(r) }}
	for g := range c.cfg.Cluster.Lanes {
		m.writers = append(m.writers, func(stop chan struct{}) { c.writeLane(r, g, &seq, stop) })
	}
	return m
}

// writeLane writes a new key every interval into the next slot of its part of the slot space,
// until stop, and reports each write with its slot and the node that took it.
func (c *client) writeLane(r *router, g int, seq *atomic.Int64, stop chan struct{}) {
	lo, hi := laneSlots(g, c.cfg.Cluster.Lanes)
	stride := laneStride(hi - lo)
	l := r.lane(clusterTimeout)
	defer l.close()
	tick := time.NewTicker(time.Duration(c.cfg.WriteInterval))
	defer tick.Stop()
	for k := 0; ; k++ {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		n := int(seq.Add(1))
		slot := lo + k*stride%(hi-lo)
		key := clusterKey(slot, n)
		_, owner, err := l.do(slot, "SET", key, strconv.Itoa(n))
		e := event{Kind: "write", Writer: clusterWriter, Seq: n, Slot: slot, Owner: owner, OK: err == nil}
		if err != nil {
			e.Err = err.Error()
		} else {
			c.ackedMu.Lock()
			c.acked[clusterWriter][key] = ack{at: time.Now().UnixNano(), seq: n}
			c.ackedMu.Unlock()
		}
		c.emit(e)
	}
}

// monitorCluster samples every node's own view: its role, its master, the slots it serves and
// its cluster_state, and a replica's link to its master.
func (c *client) monitorCluster() {
	var probes []*probe
	for _, pod := range c.cfg.Pods {
		probes = append(probes, &probe{pod: pod, port: c.cfg.RedisPort, query: func(rc *conn) (func(*event), error) {
			reply, err := rc.do("CLUSTER", "NODES")
			if err != nil {
				return nil, err
			}
			text, _ := reply.(string)
			state, ok := myselfState(text)
			if !ok {
				return nil, fmt.Errorf("no myself line in CLUSTER NODES")
			}
			info, err := rc.fields("CLUSTER", "INFO")
			if err != nil {
				return nil, err
			}
			state.State = info["cluster_state"]
			if state.Role == "slave" {
				repl, err := rc.info("replication")
				if err != nil {
					return nil, err
				}
				state.Link = repl["master_link_status"]
			}
			return func(e *event) { e.Nodes[pod] = state }, nil
		}})
	}
	c.sampleEvery(probes)
}

// myselfState reads a node's own line of CLUSTER NODES:
// ID ADDR FLAGS MASTER PING PONG EPOCH LINK SLOTS...
func myselfState(nodes string) (nodeState, bool) {
	for _, line := range strings.Split(nodes, "\n") {
		f := strings.Fields(line)
		if len(f) < 8 || !strings.Contains(f[2], "myself") {
			continue
		}
		s := nodeState{ID: f[0], Role: "master"}
		if strings.Contains(f[2], "slave") {
			s.Role, s.Master = "slave", f[3]
		}
		for _, slots := range f[8:] {
			if !strings.HasPrefix(slots, "[") { // [slot->-id]: a slot being moved
				s.Slots = append(s.Slots, slots)
			}
		}
		return s, true
	}
	return nodeState{}, false
}

// checkCluster reads every acknowledged key back through the cluster. A key whose node answers
// nil is lost; one whose node answers an error, or not at all, is unreadable (the cluster is
// down for its slot), and once a node did not answer, the keys it serves are not asked again.
func (c *client) checkCluster(r *router) checkResult {
	res := checkResult{Acked: map[string]int{}, Lost: map[string]int{}, Unreadable: map[string]int{}, LostSpan: map[string][2]int64{}}
	r.refresh()
	l := r.lane(5 * time.Second)
	defer l.close()
	down := map[string]bool{}
	c.ackedMu.Lock()
	defer c.ackedMu.Unlock()
	for writer, keys := range c.acked {
		for key, a := range keys {
			res.Acked[writer+"/plain"]++
			slot := keySlot(key)
			if down[r.owner(slot)] {
				res.Unreadable[writer+"/plain"]++
				continue
			}
			reply, addr, err := l.do(slot, "GET", key)
			switch {
			case err != nil:
				res.Unreadable[writer+"/plain"]++
				if !isReply(err) {
					down[addr] = true
				}
			case reply == nil:
				res.lost(writer, a)
				res.LostSeqs = append(res.LostSeqs, a.seq)
			}
		}
	}
	return res
}
