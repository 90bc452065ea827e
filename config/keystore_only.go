package config

import (
	"errors"
	"fmt"
	"iter"
	"os"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/openkes/openkes/keystore"
)

// ReadKeyStore reads the config file at path for its key store alone, as
// kes migrate does with the files of the source and the target. ${VAR}
// references are resolved from the process environment. See
// [ParseKeyStore] for what is checked and for the results.
func ReadKeyStore(path string) (kind string, conf keystore.Config, warnings []string, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", nil, nil, err
	}
	return ParseKeyStore(data, os.LookupEnv)
}

// ParseKeyStore parses the keystore section of a config file and nothing
// else: admin, tls, policy and the other settings may be missing or
// invalid, so the config file of any server, or a file holding only a
// keystore section, describes a key store. The section is decoded and
// validated exactly as by [Parse]. lookupEnv resolves ${VAR} references
// in the section (also in anchors it refers to); nil means os.LookupEnv.
//
// It returns the kind of the key store ("fs", "vault",
// "aws.secretsmanager", ...) and its decoded, validated Config. The error
// is a YAML syntax error, the errors.Join of every problem of the section
// (each starting with its dotted path, "keystore.fs.path: required",
// including "keystore: no keystore specified"), or an
// [*UnsupportedKeyStoreError] for a section whose backend is not built
// into this program. On error kind is "" and conf is nil.
// Warnings (unknown keys of the section) are returned in any case.
func ParseKeyStore(data []byte, lookupEnv func(string) (string, bool)) (kind string, conf keystore.Config, warnings []string, err error) {
	if lookupEnv == nil {
		lookupEnv = os.LookupEnv
	}
	root, err := documentRoot(data)
	if err != nil {
		return "", nil, nil, err
	}

	// Find the section. Problems elsewhere at the top level (a duplicate
	// "admin", say) do not concern us; those of "keystore" itself do.
	finder := &decoder{problems: new(problems)}
	var section *yaml.Node
	p := new(problems)
	for _, pr := range finder.pairs(root, "") {
		if pr.key == "keystore" {
			section = pr.value
		}
	}
	for _, e := range finder.errs {
		if strings.HasPrefix(e.Error(), "keystore: ") {
			p.errs = append(p.errs, e)
		}
	}
	if len(p.errs) > 0 {
		return "", nil, nil, errors.Join(p.errs...)
	}

	expandSection(section, "keystore", lookupEnv, p, literalNodes(root))
	if len(p.errs) > 0 {
		return "", nil, nil, errors.Join(p.errs...)
	}
	d := &decoder{problems: p}
	kind, conf = d.parseKeyStore(section)
	if len(p.errs) > 0 {
		return "", nil, p.warnings, errors.Join(p.errs...)
	}
	if err := (&File{KeyStoreKind: kind, KeyStore: conf}).KeyStoreError(); err != nil {
		return "", nil, p.warnings, err
	}
	return kind, conf, p.warnings, nil
}

// documentRoot parses a config file into the mapping at its root; an
// empty document is an empty mapping.
func documentRoot(data []byte) (*yaml.Node, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	root := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"} // an empty file has no settings
	if len(doc.Content) > 0 && !isNull(doc.Content[0]) {
		root = doc.Content[0]
		if root.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("config: the file must be a YAML mapping, found %s", kindName(root))
		}
	}
	return root, nil
}

// literalNodes returns the nodes that expandEnv leaves alone in the
// whole file: the policy allow and deny patterns, found the way expandEnv
// finds them (aliases are not followed). A keystore section that refers
// to one of them through an alias sees its text as written, as it does
// when the whole file is parsed.
func literalNodes(root *yaml.Node) map[*yaml.Node]bool {
	literal := map[*yaml.Node]bool{}
	var mark func(n *yaml.Node)
	mark = func(n *yaml.Node) {
		if n == nil || literal[n] {
			return
		}
		literal[n] = true
		if n.Kind != yaml.AliasNode {
			for _, c := range n.Content {
				mark(c)
			}
		}
	}
	for policies := range mappingValues(root, "policy") {
		for i := 1; policies.Kind == yaml.MappingNode && i < len(policies.Content); i += 2 {
			for patterns := range mappingValues(policies.Content[i], "allow", "deny") {
				mark(patterns)
			}
		}
	}
	return literal
}

// mappingValues yields the values of the given keys of the mapping n,
// without following aliases or merge keys.
func mappingValues(n *yaml.Node, keys ...string) iter.Seq[*yaml.Node] {
	return func(yield func(*yaml.Node) bool) {
		if n == nil || n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if slices.Contains(keys, n.Content[i].Value) && !yield(n.Content[i+1]) {
				return
			}
		}
	}
}

// expandSection resolves the ${VAR} references of every scalar reachable
// from n, as expandEnv does for the whole file. Unlike expandEnv it
// follows aliases, because the anchors a section refers to may be
// defined in parts of the file that are not expanded. seen holds the
// nodes to leave alone (see literalNodes) and those already visited: a
// value is never expanded twice, and an alias bomb or a self-referencing
// anchor costs no more than the document's size.
func expandSection(n *yaml.Node, path string, lookup func(string) (string, bool), p *problems, seen map[*yaml.Node]bool) {
	if n == nil || seen[n] {
		return
	}
	seen[n] = true
	switch n.Kind {
	case yaml.AliasNode:
		expandSection(n.Alias, path, lookup, p, seen)
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			expandSection(n.Content[i+1], join(path, n.Content[i].Value), lookup, p, seen)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			expandSection(c, index(path, i), lookup, p, seen)
		}
	case yaml.ScalarNode:
		expandEnv(n, path, scopeAny, lookup, p)
	}
}
