package lab

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// clientProcess is a running client (this test binary in the client role) and what it reported:
// the lab starts one in a namespace on its bridge, the real-node test one in the node's namespace.
type clientProcess struct {
	cmd   *exec.Cmd
	input *bufio.Writer

	mu      sync.Mutex
	writes  []event
	samples []event
	waiters []chan event // each gets every event as it arrives
}

// startClientProcess starts cmd, which runs this binary, as the client with cfg; dir keeps its
// log (client.log) and every event it reported (events.jsonl).
func startClientProcess(cmd *exec.Cmd, cfg clientConfig, dir string) (*clientProcess, error) {
	body, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	cmd.Env = append(os.Environ(), roleEnv+"="+roleClient, clientEnv+"="+string(body))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	logFile, err := os.Create(filepath.Join(dir, "client.log"))
	if err != nil {
		return nil, err
	}
	cmd.Stderr = logFile
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
	c := &clientProcess{cmd: cmd, input: bufio.NewWriter(in)}
	record, err := os.Create(filepath.Join(dir, "events.jsonl"))
	if err != nil {
		c.kill()
		return nil, err
	}
	go func() {
		defer record.Close()
		lines := bufio.NewScanner(out)
		lines.Buffer(make([]byte, 1<<20), 1<<20)
		for lines.Scan() {
			_, _ = record.Write(append(lines.Bytes(), '\n'))
			var e event
			if json.Unmarshal(lines.Bytes(), &e) != nil {
				continue
			}
			c.mu.Lock()
			switch e.Kind {
			case "write", "read":
				// Reads (writer "read") go with the writes: their gaps are measured alike.
				c.writes = append(c.writes, e)
			case "sample":
				c.samples = append(c.samples, e)
			}
			waiters := append([]chan event(nil), c.waiters...)
			c.mu.Unlock()
			for _, w := range waiters {
				select {
				case w <- e:
				default: // a full waiter is not reading any more
				}
			}
		}
	}()
	return c, nil
}

// kill ends the client and every process it started.
func (c *clientProcess) kill() {
	_ = c.command("quit")
	_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
	_ = c.cmd.Wait()
}

// subscribe returns a channel that gets every event from now on, until unsubscribe.
func (c *clientProcess) subscribe() chan event {
	ch := make(chan event, 4096)
	c.mu.Lock()
	c.waiters = append(c.waiters, ch)
	c.mu.Unlock()
	return ch
}

func (c *clientProcess) unsubscribe(ch chan event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, w := range c.waiters {
		if w == ch {
			c.waiters = append(c.waiters[:i], c.waiters[i+1:]...)
			return
		}
	}
}

// waitFor sends cmd to the client (if not empty) and waits until an event satisfies ok.
func (c *clientProcess) waitFor(cmd string, timeout time.Duration, ok func(event) bool) (event, error) {
	ch := c.subscribe()
	defer c.unsubscribe(ch)
	if cmd != "" {
		if err := c.command(cmd); err != nil {
			return event{}, err
		}
	}
	deadline := time.After(timeout)
	for {
		select {
		case e := <-ch:
			if ok(e) {
				return e, nil
			}
		case <-deadline:
			return event{}, fmt.Errorf("lab: condition not met within %s", timeout)
		}
	}
}

func (c *clientProcess) command(cmd string) error {
	if _, err := fmt.Fprintln(c.input, cmd); err != nil {
		return err
	}
	return c.input.Flush()
}

// stopAndCheck stops the writers and has the client look up every acknowledged key.
func (c *clientProcess) stopAndCheck() (*checkResult, error) {
	if _, err := c.waitFor("stop", 30*time.Second, func(e event) bool { return e.Kind == "stopped" }); err != nil {
		return nil, err
	}
	e, err := c.waitFor("check", 60*time.Second, func(e event) bool { return e.Kind == "check" })
	if err != nil {
		return nil, err
	}
	return e.Check, nil
}

// events returns copies of what the client reported so far.
func (c *clientProcess) events() (writes, samples []event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]event(nil), c.writes...), append([]event(nil), c.samples...)
}

// warmUp waits until the release is at rest, then lets the clients write for restBefore.
func (c *clientProcess) warmUp(atRest func(event) bool) error {
	if _, err := c.waitFor("", warmUpTimeout, atRest); err != nil {
		return fmt.Errorf("not at rest before the event: %v", err)
	}
	time.Sleep(restBefore)
	return nil
}

// awaitSettled waits until converged held for `settle` without a break, or convergeTimeout
// passed (then the release did not converge, which the measurement shows).
func (c *clientProcess) awaitSettled(converged func(event) bool) {
	deadline := time.Now().Add(convergeTimeout)
	notConverged := func(e event) bool { return e.Kind == "sample" && !converged(e) }
	for time.Now().Before(deadline) {
		if _, err := c.waitFor("", time.Until(deadline), converged); err != nil {
			return
		}
		if _, err := c.waitFor("", settle, notConverged); err != nil {
			return
		}
	}
}
