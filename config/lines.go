package config

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// nodeLines maps the dotted path of every setting in the document to the
// line where it is written (its key, or its item for sequences), using the
// paths the decoder gives its problems. Aliases are not followed: a
// setting that comes from an anchor has the line of the alias.
func nodeLines(root *yaml.Node) map[string]int {
	lines := map[string]int{}
	var walk func(n *yaml.Node, path string, depth int)
	walk = func(n *yaml.Node, path string, depth int) {
		if n == nil || depth > maxDepth {
			return
		}
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				if k.Kind != yaml.ScalarNode {
					continue
				}
				p := join(path, k.Value)
				if _, ok := lines[p]; !ok {
					lines[p] = k.Line
				}
				walk(v, p, depth+1)
			}
		case yaml.SequenceNode:
			for i, item := range n.Content {
				p := index(path, i)
				if _, ok := lines[p]; !ok {
					lines[p] = item.Line
				}
				walk(item, p, depth+1)
			}
		}
	}
	walk(root, "", 0)
	return lines
}

// lineOf returns the line of path, or of the nearest setting above it
// that has one, or 0.
func lineOf(lines map[string]int, path string) int {
	for path != "" {
		if l, ok := lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0
}

// Problem is one error of a config file.
type Problem struct {
	Path    string // dotted path of the setting, e.g. "keystore.fs.path"; "config" for the whole file
	Line    int    // line in the file, 0 if unknown
	Message string
}

func (p *Problem) Error() string { return p.Path + ": " + p.Message }

// Error is the error of [Parse] and [ReadFile] for a file with problems:
// every problem at once, and the warnings the file also has.
type Error struct {
	// File is the path of the file ([ReadFile]); empty for [Parse].
	File     string
	Problems []*Problem
	// Warnings are as [File.Warnings]: reported even though the file
	// cannot be used, so that nothing has to be fixed twice.
	Warnings  []string
	warnLines []int
}

// Error lists the problems, one per line. With a File, each line starts
// with "<file>:<line>: " (or "<file>: " if the line is unknown).
func (e *Error) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.locate(p.Line))
		b.WriteString(p.Error())
	}
	return b.String()
}

// locate returns the "<file>:<line>: " prefix of a problem or warning.
func (e *Error) locate(line int) string {
	switch {
	case e.File == "":
		return ""
	case line > 0:
		return fmt.Sprintf("%s:%d: ", e.File, line)
	default:
		return e.File + ": "
	}
}

// Unwrap returns the problems.
func (e *Error) Unwrap() []error {
	errs := make([]error, len(e.Problems))
	for i, p := range e.Problems {
		errs[i] = p
	}
	return errs
}
