package lab

import (
	"regexp"
	"strings"
)

// BENCHMARKS.md holds the Sentinel lab's table first (TestFailoverLab writes that part), then
// sections that other tests write between markers of their own: the real node's
// (TestOnARealNode), with TLS (TestTLSOnARealNode), the cluster lab's (TestClusterLab) and the
// cluster's on the real node (TestClusterOnARealNode). Each test rewrites only its part.
const (
	nodeSection        = "real node"
	nodeTLSSection     = "real node with tls"
	clusterSection     = "cluster lab"
	clusterNodeSection = "cluster on a real node"
)

func markers(name string) (begin, end string) {
	return "<!-- " + name + ": begin -->", "<!-- " + name + ": end -->"
}

// section returns the section name of page, markers included, or "".
func section(page, name string) string {
	b, e := markers(name)
	begin, end := strings.Index(page, b), strings.Index(page, e)
	if begin < 0 || end < begin {
		return ""
	}
	return page[begin : end+len(e)]
}

// withSection returns page with its section name replaced by body, or body appended.
func withSection(page, name, body string) string {
	b, e := markers(name)
	s := b + "\n" + strings.TrimSpace(body) + "\n" + e
	if old := section(page, name); old != "" {
		return strings.Replace(page, old, s, 1)
	}
	return strings.TrimRight(page, "\n") + "\n\n" + s + "\n"
}

var sectionBegin = regexp.MustCompile(`<!-- [a-z ]+: begin -->`)

// withSectionsOf returns page followed by every section of old, in old's order: the Sentinel
// lab writes its part anew and keeps the others'.
func withSectionsOf(page, old string) string {
	loc := sectionBegin.FindStringIndex(old)
	if loc == nil {
		return page
	}
	return strings.TrimRight(page, "\n") + "\n\n" + old[loc[0]:]
}
