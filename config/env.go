package config

import (
	"strings"

	"gopkg.in/yaml.v3"
)

// envRef reports whether s is, as a whole, a reference to an environment
// variable: after trimming white space it starts with "${" and ends with
// "}". It returns the variable name with white space trimmed. Anything
// else, including a reference embedded in other text ("pre-${X}"), is not
// a reference: the original server does no partial interpolation either.
func envRef(s string) (name string, ok bool) {
	s = strings.TrimSpace(s)
	if len(s) < len("${}") || !strings.HasPrefix(s, "${") || !strings.HasSuffix(s, "}") {
		return "", false
	}
	return strings.TrimSpace(s[2 : len(s)-1]), true
}

// envScope tells expandEnv where in the document it is, so that policy
// patterns can be left alone.
type envScope int

const (
	scopeRoot     envScope = iota // the top-level mapping
	scopeAny                      // anything that is expanded
	scopePolicies                 // the value of the top-level "policy" key
	scopePolicy                   // the value of one policy
	scopeLiteral                  // policy allow/deny patterns: never expanded
)

// expandEnv replaces every scalar of the tree below n that is a ${NAME}
// reference with the value of the variable, as returned by lookup, before
// the tree is decoded. Missing variables are reported to p.
//
// A substituted scalar loses the tag of the ${NAME} text: it is resolved
// again as if its value had been written in the file unquoted, so that
// "${SKIP}" decodes into a bool and "${RETRIES}" into an int. A value that
// would resolve to null (empty, "~", "null") is tagged as a string
// instead, because the variable was set and its text is what it means.
//
// Mapping keys are never expanded, and aliases are not followed: the
// anchored node is expanded where it is defined.
func expandEnv(n *yaml.Node, path string, scope envScope, lookup func(string) (string, bool), p *problems) {
	if n == nil {
		return
	}
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			expandEnv(c, path, scope, lookup, p)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			child := scopeAny
			switch scope {
			case scopeRoot:
				if key == "policy" {
					child = scopePolicies
				}
			case scopePolicies:
				child = scopePolicy
			case scopePolicy:
				if key == "allow" || key == "deny" {
					child = scopeLiteral
				}
			case scopeLiteral:
				child = scopeLiteral
			}
			expandEnv(n.Content[i+1], join(path, key), child, lookup, p)
		}
	case yaml.SequenceNode:
		child := scope
		if scope != scopeLiteral {
			child = scopeAny
		}
		for i, c := range n.Content {
			expandEnv(c, index(path, i), child, lookup, p)
		}
	case yaml.ScalarNode:
		if scope == scopeLiteral {
			return
		}
		name, ok := envRef(n.Value)
		if !ok {
			return
		}
		value, ok := lookup(name)
		if !ok {
			p.add(path, "referenced env. variable '%s' not found (line %d)", name, n.Line)
			return
		}
		n.Value, n.Tag, n.Style = value, "", 0
		if n.ShortTag() == "!!null" {
			n.Tag = "!!str"
		}
	}
}
