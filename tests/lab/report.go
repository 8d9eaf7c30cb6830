package lab

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Result is what one scenario measured for one setup. Times are in seconds.
type Result struct {
	Scenario string `json:"scenario"`
	Title    string `json:"title"`
	Setup    string `json:"setup"`
	// Bootstrap is how long the release took from nothing to converged before the scenario.
	Bootstrap float64 `json:"bootstrapSeconds"`
	// EndpointGap and SentinelGap are the longest stretches without a successful write through
	// HAProxy and through a Sentinel-aware client, from the event to the end of the run.
	EndpointGap float64 `json:"endpointGapSeconds"`
	SentinelGap float64 `json:"sentinelGapSeconds"`
	// Acked and Lost count writes by how they were acknowledged (plain SET, or SET then WAIT 1
	// answered by a replica), over both writers and the whole run.
	AckedPlain int `json:"ackedPlain"`
	AckedWait1 int `json:"ackedWait1"`
	LostPlain  int `json:"lostPlain"`
	LostWait1  int `json:"lostWait1"`
	// LostSpan is how far apart the first and the last lost write were acknowledged.
	LostSpan float64 `json:"lostSpanSeconds"`
	// Read endpoint (when the scenario reads): ReadGap is the longest stretch without a
	// successful read; ReadStaleness the oldest acknowledged write that a successful read did not
	// see, in seconds before the read; OldTimelineReads the reads that saw a write that was lost
	// after a later write had been acknowledged on the surviving timeline (old master's data
	// served after the new master took writes). Reads counts the successful reads.
	Reads            int     `json:"reads,omitempty"`
	ReadGap          float64 `json:"readGapSeconds,omitempty"`
	ReadStaleness    float64 `json:"readStalenessSeconds,omitempty"`
	OldTimelineReads int     `json:"oldTimelineReads,omitempty"`
	// RefusedAuth counts the writes and reads, over the whole run, that failed because a server
	// or sentinel refused the client's password (WRONGPASS, NOAUTH).
	RefusedAuth int `json:"refusedAuth"`
	// TwoMasters is how long at least two nodes reported role:master at once.
	TwoMasters float64 `json:"twoMastersSeconds"`
	// Converge is the time from the event until the release was converged for good, or -1.
	Converge float64      `json:"convergeSeconds"`
	Check    *checkResult `json:"check"`
	Targets  []Target     `json:"targets,omitempty"`
	// Notes are what a scenario measured besides the table's columns (a rolling update's gap
	// per pod, say).
	Notes []string `json:"notes,omitempty"`
	// Error says why the run did not finish; its figures are then not measurements.
	Error string `json:"error,omitempty"`
}

// Target is one of the targets, as measured. A target that is not Gating is reported
// but does not fail the lab: see plannedRestartGate.
type Target struct {
	Name   string `json:"name"`
	Want   string `json:"want"`
	Got    string `json:"got"`
	Met    bool   `json:"met"`
	Gating bool   `json:"gating"`
}

func (r *Result) measure(writes, samples []event, check *checkResult, start, end time.Time, converged func(event) bool) {
	t0, t1 := start.UnixNano(), end.UnixNano()
	r.EndpointGap = longestGap(writes, "endpoint", t0, t1)
	r.SentinelGap = longestGap(writes, "sentinel", t0, t1)
	for _, w := range writes {
		if strings.HasPrefix(w.Err, "WRONGPASS") || strings.HasPrefix(w.Err, "NOAUTH") {
			r.RefusedAuth++
		}
	}
	r.Check = check
	for _, w := range []string{"endpoint", "sentinel"} {
		r.AckedPlain += check.Acked[w+"/plain"]
		r.AckedWait1 += check.Acked[w+"/wait1"]
		r.LostPlain += check.Lost[w+"/plain"]
		r.LostWait1 += check.Lost[w+"/wait1"]
	}
	first, last := int64(math.MaxInt64), int64(0)
	for _, span := range check.LostSpan {
		first, last = min(first, span[0]), max(last, span[1])
	}
	if last > 0 {
		r.LostSpan = seconds(last - first)
	}
	for i, s := range samples {
		if s.Time < t0 || s.Time > t1 {
			continue
		}
		masters := 0
		for _, n := range s.Nodes {
			if n.Role == "master" {
				masters++
			}
		}
		if masters >= 2 && i+1 < len(samples) {
			r.TwoMasters += seconds(samples[i+1].Time - s.Time)
		}
	}
	r.Converge = settledAt(samples, t0, t1, converged)
	r.measureReads(writes, check.LostSeqs, t0, t1)
}

// measureReads measures the reads of [t0, t1] against the endpoint writer's writes and the
// sequence numbers of those that were lost.
func (r *Result) measureReads(events []event, lostSeqs []int, t0, t1 int64) {
	acked := map[int]int64{} // the endpoint writer's seq -> when it was acknowledged
	for _, e := range events {
		if e.Writer == "endpoint" && e.OK {
			acked[e.Seq] = e.Time
		}
	}
	lost := map[int]bool{}
	for _, seq := range lostSeqs {
		lost[seq] = true
	}
	reads := false
	for _, e := range events {
		if e.Writer != "read" || !e.OK || e.Time < t0 || e.Time > t1 {
			continue
		}
		reads = true
		r.Reads++
		holes := map[int]bool{}
		for _, h := range e.Holes {
			holes[h] = true
			if at, ok := acked[h]; ok {
				r.ReadStaleness = max(r.ReadStaleness, seconds(e.Sent-at))
			}
		}
		// The newest surviving write acknowledged before the read was sent: a lost write
		// older than it belongs to a timeline that the surviving master had left by then.
		newestSurviving := 0
		for seq := e.Seq; seq >= e.Lo; seq-- {
			if at, ok := acked[seq]; ok && !lost[seq] && at < e.Sent {
				newestSurviving = seq
				break
			}
		}
		for seq := e.Lo; seq < newestSurviving; seq++ {
			if lost[seq] && !holes[seq] {
				r.OldTimelineReads++
				break
			}
		}
	}
	if reads {
		r.ReadGap = longestGap(events, "read", t0, t1)
	}
}

// settledAt is how long after t0 the samples of [t0, t1] started to show converged for good
// (to the end), in seconds, or -1 when the last one does not.
func settledAt(samples []event, t0, t1 int64, converged func(event) bool) float64 {
	var since int64
	for _, s := range samples {
		if s.Time < t0 || s.Time > t1 {
			continue
		}
		switch {
		case !converged(s):
			since = 0
		case since == 0:
			since = s.Time
		}
	}
	if since == 0 {
		return -1
	}
	return seconds(since - t0)
}

// longestGap is the longest time in [t0, t1] without a successful write by writer, counting
// the stretches before the first and after the last success.
func longestGap(writes []event, writer string, t0, t1 int64) float64 {
	from, to := gapSpan(writes, writer, t0, t1)
	return seconds(to - from)
}

// gapSpan is where longestGap's stretch lies: from the success before it (or t0) to the one
// after it (or t1).
func gapSpan(writes []event, writer string, t0, t1 int64) (from, to int64) {
	prev := t0
	from, to = t0, t0
	for _, w := range writes {
		if w.Writer != writer || !w.OK || w.Time < t0 || w.Time > t1 {
			continue
		}
		if w.Time-prev > to-from {
			from, to = prev, w.Time
		}
		prev = w.Time
	}
	if t1-prev > to-from {
		from, to = prev, t1
	}
	return from, to
}

func seconds(ns int64) float64 { return math.Round(float64(ns)/1e7) / 100 }

func converges(converge float64) Target {
	return Target{Name: "converges", Want: "converged at the end", Got: fmt.Sprintf("%.2f s", converge), Met: converge >= 0, Gating: true}
}

func noWait1Lost(r *Result) Target {
	return Target{Name: "no WAIT 1 write lost", Want: "0", Got: fmt.Sprintf("%d of %d", r.LostWait1, r.AckedWait1), Met: r.LostWait1 == 0 && r.AckedWait1 > 0, Gating: true}
}

func noRefusedAuth(r *Result) Target {
	return Target{Name: "no client refused", Want: "0 writes or reads refused for their password", Got: strconv.Itoa(r.RefusedAuth), Met: r.RefusedAuth == 0, Gating: true}
}

func noneLost(lost, acked int) Target {
	return Target{Name: "data intact", Want: "0 acknowledged writes lost", Got: fmt.Sprintf("%d of %d", lost, acked), Met: lost == 0 && acked > 0, Gating: true}
}

// Summary is the result's figures in a line, for the test's log.
func (r *Result) Summary() string {
	line := fmt.Sprintf("endpoint gap %.2f s, sentinel gap %.2f s, lost plain %d/%d, lost WAIT 1 %d/%d, two masters %.2f s, converged %.2f s",
		r.EndpointGap, r.SentinelGap, r.LostPlain, r.AckedPlain, r.LostWait1, r.AckedWait1, r.TwoMasters, r.Converge)
	if r.RefusedAuth > 0 {
		line += fmt.Sprintf(", %d refused for their password", r.RefusedAuth)
	}
	if r.Reads > 0 {
		line += fmt.Sprintf("; reads: gap %.2f s, stalest %.2f s, lost-timeline %d of %d", r.ReadGap, r.ReadStaleness, r.OldTimelineReads, r.Reads)
	}
	return line
}

// readTargets are the read endpoint's, when the scenario read through it: no read may serve the
// old master's data once the new master has taken writes. Its staleness is reported, not judged:
// a replica is behind by its replication lag, and the endpoint promises no more than that.
func (r *Result) readTargets() []Target {
	if r.Reads == 0 {
		return nil
	}
	return []Target{{Name: "the read endpoint never serves a lost timeline", Want: "0 reads",
		Got: fmt.Sprintf("%d of %d", r.OldTimelineReads, r.Reads), Met: r.OldTimelineReads == 0, Gating: true}}
}

// lossBoundedBy: the acknowledged writes that were lost span at most maxLag plus 2 s. A master
// refuses writes once no replica has acknowledged for more than min-replicas-max-lag, counted in
// whole seconds and rechecked by its once-a-second cron, so a cut-off master may take writes for
// up to that long (3.23 s seen with a bound of 2 s).
func lossBoundedBy(lostSpan float64, lost int, maxLag time.Duration) Target {
	limit := maxLag + 2*time.Second
	return Target{Name: "lost writes span ≤ min-replicas-max-lag + 2 s", Want: fmt.Sprintf("≤ %.1f s", limit.Seconds()),
		Got: fmt.Sprintf("%.2f s (%d lost)", lostSpan, lost), Met: lostSpan <= limit.Seconds(), Gating: true}
}

func noTwoMasters(twoMasters float64) Target {
	return Target{Name: "never two masters", Want: "0 s", Got: fmt.Sprintf("%.2f s", twoMasters), Met: twoMasters == 0, Gating: true}
}

func endpointGapWithin(r *Result, limit time.Duration, gating bool) Target {
	return Target{Name: fmt.Sprintf("no write through the endpoint ≤ %.1f s", limit.Seconds()), Want: fmt.Sprintf("≤ %.1f s", limit.Seconds()),
		Got: fmt.Sprintf("%.2f s", r.EndpointGap), Met: r.EndpointGap <= limit.Seconds(), Gating: gating}
}

// Missed returns the gating targets a result did not meet.
func (r *Result) Missed() []Target { return missed(r.Targets) }

func missed(targets []Target) []Target {
	var out []Target
	for _, t := range targets {
		if !t.Met && t.Gating {
			out = append(out, t)
		}
	}
	return out
}

// targetsCell is the targets column of a table: each target, whether it was met, and its figure.
func targetsCell(targets []Target) string {
	if len(targets) == 0 {
		return "—"
	}
	var parts []string
	for _, t := range targets {
		mark := "met"
		switch {
		case !t.Met && t.Gating:
			mark = "**MISSED**"
		case !t.Met:
			mark = "**missed** (reported, not gating)"
		}
		parts = append(parts, fmt.Sprintf("%s: %s (%s)", t.Name, mark, t.Got))
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}

// Markdown renders results as one table, a row per scenario and setup.
func Markdown(results []*Result) string {
	var b strings.Builder
	b.WriteString("| scenario | setup | no write via endpoint (s) | no write via Sentinel (s) | lost plain / acked | lost WAIT 1 / acked | two masters (s) | converged after (s) | read endpoint: no read (s) / stalest read (s) / lost-timeline reads | targets |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, r := range results {
		if r.Error != "" {
			fmt.Fprintf(&b, "| %s | %s | — | — | — | — | — | — | — | **run failed**: %s |\n", r.Title, r.Setup, r.Error)
			continue
		}
		converge := fmt.Sprintf("%.2f", r.Converge)
		if r.Converge < 0 {
			converge = "never"
		}
		reads := "—" // the baseline has no read endpoint
		if r.Reads > 0 {
			reads = fmt.Sprintf("%.2f / %.2f / %d of %d", r.ReadGap, r.ReadStaleness, r.OldTimelineReads, r.Reads)
		}
		fmt.Fprintf(&b, "| %s | %s | %.2f | %.2f | %d / %d | %d / %d | %.2f | %s | %s | %s |\n",
			r.Title, r.Setup, r.EndpointGap, r.SentinelGap, r.LostPlain, r.AckedPlain, r.LostWait1, r.AckedWait1, r.TwoMasters, converge, reads, targetsCell(r.Targets))
	}
	return b.String()
}
