// Package policy compiles and evaluates KES policies: sets of allow and
// deny path patterns.
//
// STUB written by the lead; the policy helper implements it. Exported
// signatures must stay as they are (the server codes against them).
package policy

// Policy is a compiled set of allow and deny patterns. It is safe for
// concurrent use.
type Policy struct{}

// Compile compiles the patterns once. Empty patterns never match. It
// returns an error for patterns that can never match a request path
// (e.g. not starting with '/' or '*').
func Compile(allow, deny []string) (*Policy, error) { panic("unimplemented") }

// Allows reports whether the request path p (already decoded and cleaned
// by the caller) is allowed: no deny pattern matches and some allow
// pattern matches.
func (p *Policy) Allows(path string) bool { panic("unimplemented") }

// Match reports whether a single pattern matches path.
func Match(pattern, path string) bool { panic("unimplemented") }
