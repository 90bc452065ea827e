package config

import (
	"fmt"
	"strings"

	"github.com/openkes/openkes/internal/api"
	"github.com/openkes/openkes/internal/policy"
)

// routeShape is an API route as policy patterns see it: its fixed path
// segments and, for a prefix route, one more segment holding a name (or,
// for the list routes, a listing pattern).
type routeShape struct {
	path    string
	fixed   []string
	slot    bool // a prefix route: one more segment follows
	listing bool // the slot holds a listing pattern: '*' allowed, may be empty
}

var routeShapes = func() []routeShape {
	var shapes []routeShape
	for _, r := range api.AllRoutes() {
		p := strings.TrimPrefix(r.Path, "/")
		s := routeShape{path: r.Path}
		if strings.HasSuffix(p, "/") {
			s.slot = true
			p = strings.TrimSuffix(p, "/")
			s.listing = strings.HasSuffix(p, "/list")
		}
		s.fixed = strings.Split(p, "/")
		shapes = append(shapes, s)
	}
	return shapes
}()

// checkPattern reports why a policy pattern can never match a request
// that the server would authorise, or nil if it can match one: it must
// match some clean path (policy.Check) that is an API path whose name
// argument is a valid name.
func checkPattern(pattern string) error {
	if err := policy.Check(pattern); err != nil {
		return fmt.Errorf("%s", strings.TrimPrefix(err.Error(), "policy: "))
	}
	body, trailing := pattern, strings.HasSuffix(pattern, "*")
	if trailing {
		body = body[:len(body)-1]
	}
	if body == "" || body == "/" {
		return nil // "*" and "/*" match everything
	}
	if !strings.HasPrefix(body, "/") {
		// A leading '*' matches the empty first segment and more: too
		// loose to say anything about.
		return nil
	}
	segs := strings.Split(body[1:], "/")
	for _, r := range routeShapes {
		if r.matches(segs, trailing) {
			return nil
		}
	}
	msg := fmt.Sprintf("pattern %q matches no API path", pattern)
	if s := suggest(segs); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	}
	return fmt.Errorf("%s", msg)
}

// matches reports whether the pattern segments segs (the last one
// followed by a '*' that crosses '/' if trailing) can match a path of r
// whose name argument is valid.
func (r routeShape) matches(segs []string, trailing bool) bool {
	for i, p := range segs {
		last := i == len(segs)-1
		switch {
		case i < len(r.fixed):
			if last && trailing {
				return globPrefix(p, r.fixed[i])
			}
			if !glob(p, r.fixed[i]) {
				return false
			}
		case i == len(r.fixed) && r.slot:
			if !last {
				return false // names hold no '/'
			}
			return slotCanMatch(p, trailing, r.listing)
		default:
			return false
		}
	}
	// The pattern ended before the route's segments did; without a
	// trailing '*' it must name the whole route.
	n := len(segs)
	return (n == len(r.fixed) && !r.slot) || (trailing && n <= len(r.fixed))
}

// slotCanMatch reports whether the pattern segment p (a prefix if
// trailing) can match a valid name, or a listing pattern if listing.
func slotCanMatch(p string, trailing, listing bool) bool {
	literal := strings.ReplaceAll(p, "*", "")
	for i := 0; i < len(literal); i++ {
		c := literal[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == '-') {
			return false
		}
	}
	if len(literal) > api.MaxNameLen+1 {
		return false
	}
	if p == "" {
		return listing || trailing
	}
	if !trailing && !strings.Contains(p, "*") {
		return api.ValidName(p) || (listing && api.ValidPattern(p))
	}
	return strings.HasPrefix(p, "*") || p[0] != '-'
}

// glob reports whether the segment s matches the pattern segment p, in
// which '*' matches any run of characters.
func glob(p, s string) bool {
	star := strings.IndexByte(p, '*')
	if star < 0 {
		return p == s
	}
	if !strings.HasPrefix(s, p[:star]) {
		return false
	}
	rest := p[star+1:]
	for i := star; i <= len(s); i++ {
		if glob(rest, s[i:]) {
			return true
		}
	}
	return false
}

// globPrefix reports whether the pattern segment p, followed by a '*'
// that matches anything, matches the segment s: whether p matches some
// prefix of s.
func globPrefix(p, s string) bool {
	for i := 0; i <= len(s); i++ {
		if glob(p, s[:i]) {
			return true
		}
	}
	return false
}

// suggest returns the API path closest to a pattern that matches none:
// the first route whose fixed segments differ from segs by at most two
// letters in one segment.
func suggest(segs []string) string {
	for _, r := range routeShapes {
		if len(segs) < len(r.fixed) {
			continue
		}
		off := 0
		for i, f := range r.fixed {
			if segs[i] != f {
				if off > 0 || distance(segs[i], f) > 2 {
					off = 2
					break
				}
				off++
			}
		}
		if off == 1 {
			return r.path
		}
	}
	return ""
}

// distance is the Levenshtein distance of a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// checkIdentity reports why id, an identity of the config file, looks
// like a mistake: identities are lowercase hex SHA-256 hashes (64
// characters); "_" and "disabled" are accepted as placeholders.
func checkIdentity(id string) error {
	if id == "_" || id == "disabled" {
		return nil
	}
	if len(id) == 64 && strings.Trim(id, "0123456789abcdef") == "" {
		return nil
	}
	if len(id) == 64 && strings.Trim(strings.ToLower(id), "0123456789abcdef") == "" {
		return fmt.Errorf("identity '%s' has upper-case letters: identities are lowercase hex and it never matches a client", id)
	}
	return fmt.Errorf("identity '%s' is not a 64-character hex SHA-256 (see kes identity of); no client has it", id)
}
