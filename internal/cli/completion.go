package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
)

const completionUsage = `Usage:
    kes completion <bash | zsh>

Prints a script that makes the shell complete kes commands, subcommands,
options and option values.

Options:
    -h, --help               Print command line options.

Examples:
  1. Enable completion in the current bash or zsh session:
     $ source <(kes completion bash)
     $ source <(kes completion zsh)

  2. Install it for all sessions:
     $ kes completion bash > ~/.local/share/bash-completion/completions/kes
     $ kes completion zsh > "${fpath[1]}/_kes"
`

var completionCommand = &command{
	name:  "completion",
	usage: completionUsage,
	args:  argRule{min: 1, max: 1, what: "shell (bash or zsh)"},
	run: func(ctx context.Context, c *call) error {
		switch c.args[0] {
		case "bash":
			_, err := io.WriteString(c.stdout, completionScript(bashTemplate))
			return err
		case "zsh":
			_, err := io.WriteString(c.stdout, completionScript(zshTemplate))
			return err
		}
		return c.usagef("unsupported shell %q: use bash or zsh", c.args[0])
	},
}

// completionNode is what the completion scripts know about one command
// path: its subcommands, its options and which options take a value.
type completionNode struct {
	path       string
	subs       []string
	flags      []string
	valueFlags []string
}

// completionTree lists the nodes of all command paths: the root first,
// then the commands with completion lists of their own (server and
// migrate), then the others, depth first.
func completionTree() []completionNode {
	nodes := []completionNode{{flags: []string{"--help", "--version"}}}
	for _, c := range root.subs {
		nodes[0].subs = append(nodes[0].subs, c.name)
	}
	var walk func(c *command)
	walk = func(c *command) {
		nodes = append(nodes, c.completion())
		for _, sub := range c.subs {
			walk(sub)
		}
	}
	for _, c := range root.subs {
		if c.completeFlags != nil {
			nodes = append(nodes, c.completion())
		}
	}
	for _, c := range root.subs {
		if c.completeFlags == nil {
			walk(c)
		}
	}
	return nodes
}

// completion returns the completion node of c alone.
func (c *command) completion() completionNode {
	n := completionNode{path: c.path(), flags: c.completeFlags, valueFlags: c.completeValues}
	for _, sub := range c.subs {
		n.subs = append(n.subs, sub.name)
	}
	switch {
	case n.flags != nil:
	case c.subs != nil:
		n.flags = []string{"--help"}
	default:
		fs, _ := c.flagSet(&call{env: &env{}, cmd: c})
		fs.VisitAll(func(f *flag.Flag) {
			name := "--" + f.Name
			if len(f.Name) == 1 {
				name = "-" + f.Name
			}
			n.flags = append(n.flags, name)
			if b, ok := f.Value.(interface{ IsBoolFlag() bool }); !ok || !b.IsBoolFlag() {
				n.valueFlags = append(n.valueFlags, name)
			}
		})
		n.flags = append(n.flags, "--help")
	}
	return n
}

// completionScript fills the tables of the command tree into a script
// template: {{SUBS}}, {{FLAGS}} and {{VALUES}} become the case branches
// of the functions that list them for a command path.
func completionScript(template string) string {
	var subs, flags, values strings.Builder
	for _, n := range completionTree() {
		caseBranch(&subs, n.path, n.subs)
		caseBranch(&flags, n.path, n.flags)
		caseBranch(&values, n.path, n.valueFlags)
	}
	return strings.NewReplacer("{{SUBS}}", subs.String(), "{{FLAGS}}", flags.String(), "{{VALUES}}", values.String()).Replace(template)
}

func caseBranch(b *strings.Builder, path string, words []string) {
	if len(words) == 0 {
		return
	}
	words = slices.Clone(words)
	fmt.Fprintf(b, "        %q) echo %q ;;\n", path, strings.Join(words, " "))
}

// The two scripts share the shell code that finds the command path of
// the words typed so far; bash and zsh agree on case/esac and [[ ]].
// The variable holding the path is not called "path": in zsh that is
// the PATH array.
const completionFuncs = `_kes_subcommands() {
    case "$1" in
{{SUBS}}    esac
}

_kes_flags() {
    case "$1" in
{{FLAGS}}    esac
}

_kes_value_flags() {
    case "$1" in
{{VALUES}}    esac
}
`

const bashTemplate = `# bash completion for kes
#
#   source <(kes completion bash)
#
# or save it as ~/.local/share/bash-completion/completions/kes.

` + completionFuncs + `
_kes() {
    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"
    local cmdpath="" word i
    COMPREPLY=()
    for ((i = 1; i < COMP_CWORD; i++)); do
        word="${COMP_WORDS[i]}"
        [[ "$word" == -* ]] && continue
        if [[ " $(_kes_subcommands "$cmdpath") " == *" $word "* ]]; then
            cmdpath="${cmdpath:+$cmdpath }$word"
        fi
    done
    if [[ " $(_kes_value_flags "$cmdpath") " == *" $prev "* ]]; then
        case "$prev" in
            --color) COMPREPLY=($(compgen -W "auto never always" -- "$cur")) ;;
            --auth) COMPREPLY=($(compgen -W "on off" -- "$cur")) ;;
            --ca|--key|--cert|--config|--from|--to) COMPREPLY=($(compgen -f -- "$cur")) ;;
        esac
        return 0
    fi
    if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "$(_kes_flags "$cmdpath")" -- "$cur"))
        return 0
    fi
    local subs
    subs="$(_kes_subcommands "$cmdpath")"
    if [[ -n "$subs" ]]; then
        COMPREPLY=($(compgen -W "$subs" -- "$cur"))
    elif [[ "$cmdpath" == "completion" ]]; then
        COMPREPLY=($(compgen -W "bash zsh" -- "$cur"))
    fi
    return 0
}

complete -o bashdefault -o default -F _kes kes
`

const zshTemplate = `#compdef kes
# zsh completion for kes
#
#   source <(kes completion zsh)
#
# or save it as _kes in a directory of $fpath.

` + completionFuncs + `
_kes() {
    local cmdpath="" word i
    local -a subs vflags
    for ((i = 2; i < CURRENT; i++)); do
        word="${words[i]}"
        [[ "$word" == -* ]] && continue
        subs=(${=$(_kes_subcommands "$cmdpath")})
        if (( ${subs[(Ie)$word]} )); then
            cmdpath="${cmdpath:+$cmdpath }$word"
        fi
    done
    local cur="${words[CURRENT]}" prev="${words[CURRENT-1]}"
    vflags=(${=$(_kes_value_flags "$cmdpath")})
    if (( ${vflags[(Ie)$prev]} )); then
        case "$prev" in
            --color) compadd -- auto never always ;;
            --auth) compadd -- on off ;;
            --ca|--key|--cert|--config|--from|--to) _files ;;
        esac
        return
    fi
    if [[ "$cur" == -* ]]; then
        compadd -- ${=$(_kes_flags "$cmdpath")}
        return
    fi
    subs=(${=$(_kes_subcommands "$cmdpath")})
    if (( ${#subs} )); then
        compadd -- $subs
    elif [[ "$cmdpath" == "completion" ]]; then
        compadd -- bash zsh
    else
        _files
    fi
}

if [[ "${funcstack[1]}" == "_kes" ]]; then
    _kes "$@"
else
    compdef _kes kes
fi
`
