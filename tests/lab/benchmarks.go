package lab

import "strings"

// BENCHMARKS.md holds the lab's table (TestFailoverLab writes the page) and the real node's
// figures (TestOnARealNode writes them between these markers; the lab's page keeps them).
const (
	nodeSectionBegin = "<!-- real node: begin -->"
	nodeSectionEnd   = "<!-- real node: end -->"
)

// nodeSection returns the real node's section of page, markers included, or "".
func nodeSection(page string) string {
	begin := strings.Index(page, nodeSectionBegin)
	end := strings.Index(page, nodeSectionEnd)
	if begin < 0 || end < begin {
		return ""
	}
	return page[begin : end+len(nodeSectionEnd)]
}

// withNodeSection returns page with its real node's section replaced by body, or body appended.
func withNodeSection(page, body string) string {
	section := nodeSectionBegin + "\n" + strings.TrimSpace(body) + "\n" + nodeSectionEnd
	if old := nodeSection(page); old != "" {
		return strings.Replace(page, old, section, 1)
	}
	return strings.TrimRight(page, "\n") + "\n\n" + section + "\n"
}
