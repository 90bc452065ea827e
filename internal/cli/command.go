package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// runFunc runs a command with its parsed flags and its arguments.
type runFunc func(ctx context.Context, e *env, args []string) error

// command is a node of the command tree: a group of subcommands or a
// leaf that parses flags.
type command struct {
	name  string
	usage string // printed by --help

	// flags registers the leaf's options and returns the function that
	// runs it once they are parsed.
	flags func(fs *flag.FlagSet, e *env) runFunc

	subs []*command

	// legacy, if set, runs a group invoked without or with an unknown
	// subcommand (kes identity <file>).
	legacy runFunc
}

// commands is the tree of the client commands. It is set in init, since
// the completion command walks it.
var commands []*command

func init() {
	commands = []*command{
		lsCommand,
		keyCommand,
		policyCommand,
		identityCommand,
		statusCommand,
		metricCommand,
		logCommand,
		completionCommand,
	}
}

// dispatch finds the command named by args and runs it.
func dispatch(ctx context.Context, e *env, args []string) error {
	for _, c := range commands {
		if c.name == args[0] {
			return c.run(ctx, e, c.name, args[1:])
		}
	}
	return &usageError{msg: fmt.Sprintf("%q is not a kes command. See 'kes --help'", args[0])}
}

// run runs the command c, whose full path (without "kes") is path.
func (c *command) run(ctx context.Context, e *env, path string, args []string) error {
	if c.flags != nil {
		fs := newFlagSet(path)
		run := c.flags(fs, e)
		rest, err := parseFlags(fs, args)
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(e.stdout, c.usage)
			return nil
		}
		if err != nil {
			return usagef(path, "%v", err)
		}
		return run(ctx, e, rest)
	}

	if len(args) == 0 {
		if c.legacy != nil {
			return c.legacy(ctx, e, args)
		}
		fmt.Fprint(e.stderr, c.usage)
		return flag.ErrHelp
	}
	switch args[0] {
	case "-h", "--help", "-help", "help":
		fmt.Fprint(e.stdout, c.usage)
		return nil
	}
	for _, sub := range c.subs {
		if sub.name == args[0] {
			return sub.run(ctx, e, path+" "+sub.name, args[1:])
		}
	}
	if c.legacy != nil {
		return c.legacy(ctx, e, args)
	}
	return &usageError{msg: fmt.Sprintf("%q is not a %s command. See 'kes %s --help'", args[0], path, path)}
}

// newFlagSet returns an empty FlagSet that reports errors instead of
// printing them.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parseFlags parses args with fs and returns the arguments that are not
// flags. Unlike fs.Parse, flags may follow arguments, as in upstream's
// command line ("kes key info my-key --json"); "--" ends the flags.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		remaining := fs.Args()
		if n := len(args) - len(remaining); n > 0 && args[n-1] == "--" && !isFlagValue(fs, args, n-1) {
			return append(rest, remaining...), nil
		}
		if len(remaining) == 0 {
			return rest, nil
		}
		rest = append(rest, remaining[0])
		args = remaining[1:]
	}
}

// isFlagValue reports whether args[i] is the value of the flag before it
// ("-s --"), not the terminator.
func isFlagValue(fs *flag.FlagSet, args []string, i int) bool {
	if i == 0 {
		return false
	}
	prev := args[i-1]
	if !strings.HasPrefix(prev, "-") || strings.Contains(prev, "=") {
		return false
	}
	f := fs.Lookup(strings.TrimLeft(prev, "-"))
	if f == nil {
		return false
	}
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return !ok || !b.IsBoolFlag()
}

// boolFlag registers a boolean flag under each of the names.
func boolFlag(fs *flag.FlagSet, p *bool, names ...string) {
	for _, n := range names {
		fs.BoolVar(p, n, *p, "")
	}
}

// stringFlag registers a string flag under each of the names.
func stringFlag(fs *flag.FlagSet, p *string, names ...string) {
	for _, n := range names {
		fs.StringVar(p, n, *p, "")
	}
}

// listFlag is a flag that may be given several times.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// colorFlag is the value of --color.
type colorFlag struct{ e *string }

func (c colorFlag) String() string {
	if c.e == nil {
		return "auto"
	}
	return *c.e
}

func (c colorFlag) Set(v string) error {
	switch v {
	case "auto", "never", "always":
		*c.e = v
		return nil
	}
	return fmt.Errorf("invalid --color %q: use auto, never or always", v)
}

// addColorFlag registers --color, which sets the colour mode of e.
func addColorFlag(fs *flag.FlagSet, e *env) {
	fs.Var(colorFlag{&e.color}, "color", "")
}

// argsBetween checks the number of arguments of the command at path.
func argsBetween(path string, args []string, min, max int, what string) error {
	switch {
	case len(args) < min:
		return usagef(path, "missing %s", what)
	case max >= 0 && len(args) > max:
		return usagef(path, "too many arguments")
	}
	return nil
}
