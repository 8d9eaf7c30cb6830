package lab

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// conn is the smallest Redis (RESP2) client the lab needs: one command at a time, every reply
// read whole, each call bounded by a deadline. The lab carries no Redis library for this.
type conn struct {
	c        net.Conn
	r        *bufio.Reader
	timeout  time.Duration
	password string // what it authenticated with
}

// errReply is an error reply from the server (-ERR, -NOREPLICAS, -READONLY, ...).
type errReply string

func (e errReply) Error() string { return string(e) }

// dialTLS, when set, makes every connection of dial TLS (the client sets it for a release with
// TLS: clientTLS).
var dialTLS *tls.Config

// dial connects to addr, which must be inside the allowed subnets (see mustBeAllowed), and
// authenticates with password when it is set.
func dial(addr, password string, timeout time.Duration) (*conn, error) {
	if err := mustBeAllowed(addr); err != nil {
		return nil, err
	}
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	if dialTLS != nil {
		secure := tls.Client(c, dialTLS)
		if err := secure.SetDeadline(time.Now().Add(timeout)); err != nil {
			c.Close()
			return nil, err
		}
		if err := secure.Handshake(); err != nil {
			c.Close()
			return nil, fmt.Errorf("TLS handshake with %s: %w", addr, err)
		}
		c = secure
	}
	rc := &conn{c: c, r: bufio.NewReader(c), timeout: timeout, password: password}
	if password != "" {
		if _, err := rc.do("AUTH", password); err != nil {
			c.Close()
			return nil, err
		}
	}
	return rc, nil
}

func (rc *conn) Close() error { return rc.c.Close() }

// do sends one command and returns its reply: string, int64, nil, []any, or an errReply error.
func (rc *conn) do(args ...string) (any, error) {
	if err := rc.c.SetDeadline(time.Now().Add(rc.timeout)); err != nil {
		return nil, err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := rc.c.Write([]byte(b.String())); err != nil {
		return nil, err
	}
	return rc.read()
}

func (rc *conn) read() (any, error) {
	line, err := rc.r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if len(line) < 3 || !strings.HasSuffix(line, "\r\n") {
		return nil, fmt.Errorf("malformed reply %q", line)
	}
	kind, body := line[0], line[1:len(line)-2]
	switch kind {
	case '+':
		return body, nil
	case '-':
		return nil, errReply(body)
	case ':':
		return strconv.ParseInt(body, 10, 64)
	case '$':
		n, err := strconv.Atoi(body)
		if err != nil || n < 0 {
			return nil, err
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(rc.r, buf); err != nil {
			return nil, err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(body)
		if err != nil || n < 0 {
			return nil, err
		}
		items := make([]any, n)
		for i := range items {
			if items[i], err = rc.read(); err != nil && !isReply(err) {
				return nil, err
			}
		}
		return items, nil
	}
	return nil, fmt.Errorf("unknown reply type %q", kind)
}

func isReply(err error) bool {
	var e errReply
	return errors.As(err, &e)
}

// info returns the fields of INFO section as a map.
func (rc *conn) info(section string) (map[string]string, error) {
	return rc.fields("INFO", section)
}

// fields returns the "key:value" lines of a command's text reply (INFO, CLUSTER INFO) as a map.
func (rc *conn) fields(args ...string) (map[string]string, error) {
	v, err := rc.do(args...)
	if err != nil {
		return nil, err
	}
	s, ok := v.(string)
	if !ok {
		return nil, fmt.Errorf("%s: unexpected reply %T", strings.Join(args, " "), v)
	}
	fields := map[string]string{}
	for _, line := range strings.Split(s, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			fields[k] = v
		}
	}
	return fields, nil
}
