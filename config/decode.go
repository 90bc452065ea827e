package config

import (
	"encoding"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Limits that keep hostile documents (alias bombs, self-referencing
// anchors) from exhausting memory or the stack. Real config files are
// far below both.
const (
	maxVisits = 100_000
	maxDepth  = 64
)

// problems collects the errors and warnings of one Parse. Every entry
// starts with the dotted path of the setting it is about.
type problems struct {
	errs      []error
	warnings  []string
	warnLines []int          // line of each warning, 0 if unknown
	lines     map[string]int // dotted path -> line, see nodeLines

	// failed holds the paths whose value could not be decoded. Later
	// problems at or below such a path are suppressed: after "tls:
	// expected a mapping" there is no point in also saying "tls.key:
	// required".
	failed []string
}

// add records an error at path, unless path lies below a value that
// failed to decode.
func (p *problems) add(path, format string, args ...any) {
	for _, f := range p.failed {
		if below(path, f) {
			return
		}
	}
	line := lineOf(p.lines, path)
	if path == "" {
		path = "config" // the document as a whole
	}
	p.errs = append(p.errs, &Problem{Path: path, Line: line, Message: fmt.Sprintf(format, args...)})
}

// warn records a warning at path.
func (p *problems) warn(path, format string, args ...any) {
	p.warnings = append(p.warnings, path+": "+fmt.Sprintf(format, args...))
	p.warnLines = append(p.warnLines, lineOf(p.lines, path))
}

// fail records a decoding error at path.
func (p *problems) fail(path, format string, args ...any) {
	p.add(path, format, args...)
	p.failed = append(p.failed, path)
}

// hasFailed reports whether decoding failed at or below path.
func (p *problems) hasFailed(path string) bool {
	for _, f := range p.failed {
		if below(f, path) {
			return true
		}
	}
	return false
}

// required records "required" at path if value is blank.
func (p *problems) required(path, value string) {
	if strings.TrimSpace(value) == "" {
		p.add(path, "required")
	}
}

// nonNegative records an invalid duration at path if d < 0.
func (p *problems) nonNegative(path string, d time.Duration) {
	if d < 0 {
		p.add(path, "invalid duration '%v'", d)
	}
}

// below reports whether path equals parent or lies below it.
func below(path, parent string) bool {
	if parent == "" || path == parent {
		return true
	}
	return strings.HasPrefix(path, parent) && (path[len(parent)] == '.' || path[len(parent)] == '[')
}

// join appends a mapping key to a dotted path.
func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// index appends a sequence index to a dotted path.
func index(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

// decoder turns yaml.Nodes into the mirror structs. It differs from
// yaml.Node.Decode in what this package needs: every error carries the
// dotted path of the setting, all errors are collected rather than the
// first few, unknown keys become warnings, duplicate keys are errors,
// booleans and durations follow the KES rules on any (also
// env-substituted) scalar, and it follows aliases within fixed limits.
//
// Types it does not handle itself (numbers, interfaces, types with their
// own UnmarshalYAML or UnmarshalText) are passed to yaml.Node.Decode, so
// backend configs registered with keystore.Register may use them.
type decoder struct {
	*problems
	visits    int
	depth     int
	overrides Overrides
}

var (
	nodeType        = reflect.TypeFor[yaml.Node]()
	durationType    = reflect.TypeFor[time.Duration]()
	unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
	textType        = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// enter is called when descending into a node. It returns false if the
// document is too large or too deep to continue.
func (d *decoder) enter(path string) bool {
	d.visits++
	switch {
	case d.visits == maxVisits:
		d.fail(path, "the document is too large or uses too many aliases")
		return false
	case d.visits > maxVisits:
		return false
	case d.depth >= maxDepth:
		d.fail(path, "the document is nested too deeply (or an anchor refers to itself)")
		return false
	}
	d.depth++
	return true
}

func (d *decoder) leave() { d.depth-- }

// resolve follows aliases.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// isNull reports whether n is absent or an explicit null ("", "~", "null").
func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == 0 || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// kindName describes a node for error messages.
func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("the value '%s'", n.Value)
	default:
		return "a document"
	}
}

// decode stores the value of n in v.
func (d *decoder) decode(n *yaml.Node, path string, v reflect.Value) {
	if !d.enter(path) {
		return
	}
	defer d.leave()
	n = resolve(n)
	t := v.Type()

	if t == nodeType {
		if n != nil {
			v.Set(reflect.ValueOf(*n))
		}
		return
	}
	if isNull(n) && t.Kind() != reflect.Struct {
		v.SetZero()
		return
	}
	if t == durationType {
		d.duration(n, path, v)
		return
	}
	if pt := reflect.PointerTo(t); pt.Implements(unmarshalerType) || pt.Implements(textType) {
		d.fallback(n, path, v)
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(t.Elem()))
		}
		d.decode(n, path, v.Elem())
	case reflect.Struct:
		d.structure(n, path, v)
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			d.fallback(n, path, v)
			return
		}
		d.mapping(n, path, v)
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 { // []byte: let yaml handle !!binary
			d.fallback(n, path, v)
			return
		}
		d.sequence(n, path, v)
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.fail(path, "expected a string, found %s", kindName(n))
			return
		}
		if n.ShortTag() == "!!binary" { // base64 text that yaml decodes
			d.fallback(n, path, v)
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		b, ok := parseBool(n)
		if !ok {
			d.fail(path, "invalid boolean '%s' (use true or false)", n.Value)
			return
		}
		v.SetBool(b)
	default:
		d.fallback(n, path, v)
	}
}

// parseBool accepts the YAML 1.1 forms, as yaml.v3 does for typed bools,
// in any letter case.
func parseBool(n *yaml.Node) (value, ok bool) {
	if n.Kind != yaml.ScalarNode {
		return false, false
	}
	switch strings.ToLower(strings.TrimSpace(n.Value)) {
	case "true", "yes", "y", "on":
		return true, true
	case "false", "no", "n", "off":
		return false, true
	}
	return false, false
}

// duration decodes a Go duration string. Plain numbers are rejected, as by
// yaml.v3: "300" is ambiguous.
func (d *decoder) duration(n *yaml.Node, path string, v reflect.Value) {
	if n.Kind != yaml.ScalarNode {
		d.fail(path, "expected a duration, found %s", kindName(n))
		return
	}
	if tag := n.ShortTag(); tag == "!!int" || tag == "!!float" {
		d.fail(path, "invalid duration '%s' (a unit is required, e.g. 30s or 5m)", n.Value)
		return
	}
	dur, err := time.ParseDuration(strings.TrimSpace(n.Value))
	if err != nil {
		d.fail(path, "invalid duration '%s'", n.Value)
		return
	}
	v.SetInt(int64(dur))
}

// fallback decodes n with yaml.v3 and reports its errors at path.
func (d *decoder) fallback(n *yaml.Node, path string, v reflect.Value) {
	err := n.Decode(v.Addr().Interface())
	if err == nil {
		return
	}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		d.fail(path, "%s", strings.Join(te.Errors, "; "))
		return
	}
	d.fail(path, "%v", err)
}

// pair is one entry of a mapping.
type pair struct {
	key   string
	value *yaml.Node
}

// pairs returns the entries of the mapping n in document order, with the
// entries of merge keys ("<<: *anchor") first unless n sets them itself.
// Duplicate keys are errors.
func (d *decoder) pairs(n *yaml.Node, path string) []pair {
	var own, merged []pair
	lines := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		if k == nil || k.Kind != yaml.ScalarNode {
			d.fail(path, "line %d: a key must be a string", n.Content[i].Line)
			continue
		}
		if k.ShortTag() == "!!merge" {
			merged = append(merged, d.merge(v, path)...)
			continue
		}
		if line, dup := lines[k.Value]; dup {
			d.fail(join(path, k.Value), "defined more than once (lines %d and %d)", line, k.Line)
			continue
		}
		lines[k.Value] = k.Line
		own = append(own, pair{k.Value, v})
	}
	if len(merged) == 0 {
		return own
	}
	// An earlier merge source wins over a later one, and the mapping's own
	// keys win over all of them (YAML merge key semantics).
	out := make([]pair, 0, len(merged)+len(own))
	for _, p := range merged {
		if _, ok := lines[p.key]; !ok {
			lines[p.key] = 0
			out = append(out, p)
		}
	}
	return append(out, own...)
}

// merge returns the entries a merge key's value contributes.
func (d *decoder) merge(v *yaml.Node, path string) []pair {
	if !d.enter(path) {
		return nil
	}
	defer d.leave()
	v = resolve(v)
	switch {
	case v != nil && v.Kind == yaml.MappingNode:
		return d.pairs(v, path)
	case v != nil && v.Kind == yaml.SequenceNode:
		var out []pair
		for _, e := range v.Content {
			e = resolve(e)
			if e == nil || e.Kind != yaml.MappingNode {
				d.fail(path, "line %d: a merge key (<<) needs a mapping or a list of mappings", v.Line)
				return nil
			}
			if !d.enter(path) {
				return nil
			}
			out = append(out, d.pairs(e, path)...)
			d.leave()
		}
		return out
	default:
		d.fail(path, "a merge key (<<) needs a mapping or a list of mappings")
		return nil
	}
}

// structure decodes a mapping into a struct, warning about unknown keys.
func (d *decoder) structure(n *yaml.Node, path string, v reflect.Value) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.fail(path, "expected a mapping, found %s", kindName(n))
		return
	}
	fields := structFields(v.Type())
	for _, p := range d.pairs(n, path) {
		idx, ok := fields[p.key]
		if !ok {
			d.warn(join(path, p.key), "unknown key, ignored")
			continue
		}
		d.decode(p.value, join(path, p.key), v.FieldByIndex(idx))
	}
}

// structFields maps the YAML names of t's fields to their indices,
// following yaml.v3's rules: the name is the yaml tag, or the lowercased
// field name; "-" skips a field; ",inline" merges an embedded struct.
func structFields(t reflect.Type) map[string][]int {
	fields := map[string][]int{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if opts == "inline" || strings.Contains(opts, "inline") {
			if f.Type.Kind() == reflect.Struct {
				for k, idx := range structFields(f.Type) {
					fields[k] = append([]int{i}, idx...)
				}
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fields[name] = []int{i}
	}
	return fields
}

// mapping decodes a mapping into a map with string keys.
func (d *decoder) mapping(n *yaml.Node, path string, v reflect.Value) {
	if n.Kind != yaml.MappingNode {
		d.fail(path, "expected a mapping, found %s", kindName(n))
		return
	}
	t := v.Type()
	m := reflect.MakeMap(t)
	for _, p := range d.pairs(n, path) {
		e := reflect.New(t.Elem()).Elem()
		d.decode(p.value, join(path, p.key), e)
		m.SetMapIndex(reflect.ValueOf(p.key).Convert(t.Key()), e)
	}
	v.Set(m)
}

// sequence decodes a list into a slice.
func (d *decoder) sequence(n *yaml.Node, path string, v reflect.Value) {
	if n.Kind != yaml.SequenceNode {
		d.fail(path, "expected a list, found %s", kindName(n))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, e := range n.Content {
		d.decode(e, index(path, i), s.Index(i))
	}
	v.Set(s)
}
