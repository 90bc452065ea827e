// Package policy compiles and evaluates KES policies: sets of allow and
// deny patterns matched against the request path.
//
// # Evaluation
//
// A request path is rejected if any deny pattern matches it, accepted if
// any allow pattern matches it, and rejected otherwise. An empty policy
// (or a nil *Policy) rejects everything.
//
// # Patterns
//
// A pattern is a glob over the decoded request path, e.g.
// "/v1/key/generate/my-app*":
//
//   - '*' matches any run of characters, possibly empty, within one path
//     segment: it does not match '/'.
//   - A '*' that ends the pattern also matches across '/'. A pattern
//     ending in its only '*' is therefore a plain prefix test, as in
//     upstream KES, where every pattern ending in '*' is a prefix test:
//     "/v1/key/*" matches "/v1/key/create/x" and "*" matches everything.
//   - Every other character, including '?', '[' and '\', stands for
//     itself, and matching is case-sensitive.
//   - The empty pattern never matches.
//
// This differs from upstream KES (kms-go), where a '*' that does not end
// the pattern is a literal character, so that "/v1/key/*/my-key" never
// matched a real path there. Every pattern that could match a real path
// upstream keeps its meaning here.
//
// Upstream accepted any string as a pattern. [Compile] does too, and
// patterns that cannot match a request path simply never match; [Check]
// reports such patterns so that the configuration layer can warn about
// them.
package policy

import (
	"errors"
	"fmt"
	"strings"
)

// Policy is a compiled set of allow and deny patterns. It is safe for
// concurrent use. A nil *Policy allows nothing.
type Policy struct {
	allow, deny []matcher
}

// Compile compiles the allow and deny patterns once, so that
// [Policy.Allows] does not allocate. Duplicate patterns are collapsed.
//
// Compile accepts every string, as upstream KES does: empty patterns and
// patterns that cannot match a request path (see [Check]) never match.
// The error result is always nil today; it is kept so that future
// pattern syntax errors can be reported without an API change.
func Compile(allow, deny []string) (*Policy, error) {
	return &Policy{
		allow: compileAll(allow),
		deny:  compileAll(deny),
	}, nil
}

func compileAll(patterns []string) []matcher {
	if len(patterns) == 0 {
		return nil
	}
	ms := make([]matcher, 0, len(patterns))
	seen := make(map[string]struct{}, len(patterns))
	for _, p := range patterns {
		if _, ok := seen[p]; ok {
			continue
		}
		seen[p] = struct{}{}
		if p == "" {
			continue // never matches
		}
		ms = append(ms, compile(p))
	}
	return ms
}

// Allows reports whether the request path p is allowed: no deny pattern
// matches it and some allow pattern does. The caller passes the decoded,
// cleaned path. As defence in depth, Allows returns false for any path
// that is not clean (see [IsClean]), whatever the patterns, so that no
// "..", "//" or similar trick can reach an allow rule.
//
// Allows does not allocate. It returns false for a nil *Policy.
func (p *Policy) Allows(path string) bool {
	if p == nil || !IsClean(path) {
		return false
	}
	for i := range p.deny {
		if p.deny[i].match(path) {
			return false
		}
	}
	for i := range p.allow {
		if p.allow[i].match(path) {
			return true
		}
	}
	return false
}

// Match reports whether a single pattern matches path, with the pattern
// semantics described in the package documentation. Unlike
// [Policy.Allows], Match does not require path to be clean. It does not
// allocate.
func Match(pattern, path string) bool {
	if pattern == "" {
		return false
	}
	m := compile(pattern)
	return m.match(path)
}

// IsClean reports whether path is a clean absolute request path, the only
// kind [Policy.Allows] can allow: it starts with '/', contains no empty
// segment ("//"), no "." or ".." segment, no '\' and no NUL byte. A
// trailing '/' is permitted.
func IsClean(path string) bool {
	if path == "" || path[0] != '/' {
		return false
	}
	// segStart is the index of the first byte of the current segment.
	segStart := 1
	for i := 1; i <= len(path); i++ {
		if i < len(path) {
			switch path[i] {
			case '\\', 0:
				return false
			case '/':
			default:
				continue
			}
		}
		// path[segStart:i] is a complete segment.
		switch path[segStart:i] {
		case ".", "..":
			return false
		case "":
			// Only the final segment may be empty (trailing slash or
			// the root path "/").
			if i < len(path) {
				return false
			}
		}
		segStart = i + 1
	}
	return true
}

// Check reports whether pattern can match some clean request path (see
// [IsClean]). It returns nil if it can, and otherwise an error naming the
// pattern and the reason. Upstream KES accepted any pattern, so callers
// should treat the error as a warning: [Compile] accepts the pattern
// anyway, and it simply never matches.
func Check(pattern string) error {
	if pattern == "" {
		return errors.New("policy: empty pattern never matches")
	}
	if strings.IndexByte(pattern, 0) >= 0 {
		return fmt.Errorf("policy: pattern %q never matches: it contains a NUL byte", pattern)
	}
	if strings.IndexByte(pattern, '\\') >= 0 {
		return fmt.Errorf("policy: pattern %q never matches: it contains '\\'", pattern)
	}
	body, trailing := pattern, pattern[len(pattern)-1] == '*'
	if trailing {
		body = body[:len(body)-1]
	}
	// A clean path has an empty first segment (before its leading '/'),
	// which only '*' can match.
	segs := strings.Split(body, "/")
	if strings.Trim(segs[0], "*") != "" {
		return fmt.Errorf("policy: pattern %q never matches: it must start with '/' or '*'", pattern)
	}
	for i, seg := range segs[1:] {
		last := i == len(segs)-2
		switch {
		case seg == "" && !last:
			return fmt.Errorf("policy: pattern %q never matches: it contains \"//\"", pattern)
		case (seg == "." || seg == "..") && !(last && trailing):
			// A trailing '*' turns a final "." into ".*", which can
			// match a segment such as ".x".
			return fmt.Errorf("policy: pattern %q never matches: it contains a %q segment", pattern, seg)
		}
	}
	return nil
}

type matchKind uint8

const (
	// kindLiteral: no '*'; the path must equal the pattern.
	kindLiteral matchKind = iota
	// kindPrefix: the only '*' ends the pattern; the path must start
	// with the pattern minus the '*'.
	kindPrefix
	// kindGlob: anything else; see matchGlob.
	kindGlob
)

// matcher is one compiled, non-empty pattern.
type matcher struct {
	kind matchKind
	// body is the pattern without its trailing '*', if any.
	body string
	// trailing reports whether the pattern ends in '*', which then
	// matches across '/'.
	trailing bool
}

func compile(pattern string) matcher {
	body, trailing := pattern, strings.HasSuffix(pattern, "*")
	if trailing {
		body = pattern[:len(pattern)-1]
	}
	switch {
	case strings.IndexByte(body, '*') >= 0:
		return matcher{kind: kindGlob, body: body, trailing: trailing}
	case trailing:
		return matcher{kind: kindPrefix, body: body, trailing: true}
	default:
		return matcher{kind: kindLiteral, body: body}
	}
}

func (m *matcher) match(path string) bool {
	switch m.kind {
	case kindLiteral:
		return path == m.body
	case kindPrefix:
		return strings.HasPrefix(path, m.body)
	default:
		return matchGlob(m.body, m.trailing, path)
	}
}

// matchGlob matches path against the pattern body, in which '*' does not
// match '/'. If trailing is set, body stands for body+"*" where that last
// '*' matches anything, including '/'.
//
// Because no '*' of body can match '/', the i-th '/' of body must match
// the i-th '/' of path, so matching proceeds one segment at a time.
func matchGlob(body string, trailing bool, path string) bool {
	for {
		pi := strings.IndexByte(body, '/')
		si := strings.IndexByte(path, '/')
		if pi < 0 { // last segment of the pattern
			if trailing {
				// The trailing '*' absorbs the rest of this segment
				// and every following one.
				if si >= 0 {
					path = path[:si]
				}
				return matchSegment(body, path, true)
			}
			return si < 0 && matchSegment(body, path, false)
		}
		if si < 0 || !matchSegment(body[:pi], path[:si], false) {
			return false
		}
		body, path = body[pi+1:], path[si+1:]
	}
}

// matchSegment reports whether the glob pat matches seg, neither of which
// contains '/'. If prefix is set, pat need only match a prefix of seg (as
// if pat ended in '*').
//
// It is the classic linear-space glob matcher: on a mismatch it
// backtracks to the most recent '*' and lets it absorb one more byte.
// Backtracking to the most recent '*' only is sufficient because within a
// segment a later '*' can absorb anything an earlier one could.
func matchSegment(pat, seg string, prefix bool) bool {
	px, sx := 0, 0
	starPx, starSx := -1, -1
	for px < len(pat) || sx < len(seg) {
		if px < len(pat) {
			switch c := pat[px]; {
			case c == '*':
				starPx, starSx = px, sx
				px++
				continue
			case sx < len(seg) && seg[sx] == c:
				px++
				sx++
				continue
			}
		} else if prefix {
			return true
		}
		if starPx >= 0 && starSx < len(seg) {
			starSx++
			px, sx = starPx+1, starSx
			continue
		}
		return false
	}
	return true
}
