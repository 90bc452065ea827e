package cli

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// runFunc runs a command once its options are parsed and its arguments
// checked.
type runFunc func(ctx context.Context, c *call) error

// option is a set of the options that many commands share.
type option uint8

const (
	optConn     option = 1 << iota // connection options: -s/--server, -a/--api-key, --ca, -k/--insecure, -e/--enclave
	optConnLong                    // the same without -s, which 'kes status' uses for --short, as upstream
	optJSON                        // --json, into call.json
	optColor                       // --color, into env.color
)

// argRule is how many arguments a command takes, and which of them are
// base64.
type argRule struct {
	min, max int    // max < 0: no limit
	what     string // names what is missing when there are fewer than min

	// base64[i], if not "", names argument i, which must be standard
	// base64 and is decoded into call.decoded[i].
	base64 []string

	// names is how many leading arguments are key names (-1: all), which
	// are checked with the server's rules before any request is sent.
	names int

	// deferred leaves the check to the run function (call.checkArgs),
	// for commands that check their options first.
	deferred bool
}

// command is a node of the command tree: a group of subcommands or a
// leaf that parses options. Its path ("key info") is derived from the
// tree.
type command struct {
	name  string
	usage string // printed by --help

	opts option  // the shared options of a leaf
	args argRule // the arguments of a leaf

	// run runs a leaf without options of its own. A leaf with its own
	// options sets flags instead: it registers them and returns the
	// function that runs the leaf once they are parsed.
	run   runFunc
	flags func(fs *flag.FlagSet) runFunc

	// flagsFirst ends the options at the first argument, as the
	// standard library does; by default options may follow arguments.
	flagsFirst bool

	subs []*command

	// legacy, if set, runs a group invoked without or with an unknown
	// subcommand (kes identity <file>).
	legacy runFunc

	// completeFlags and completeValues, if set, are the options that
	// completion offers and those of them that take a value, where they
	// are not all the registered ones in name order.
	completeFlags, completeValues []string

	parent *command // set by link
}

// root is the tree of all commands. It is set in init, since the
// completion command walks it.
var root *command

func init() {
	root = &command{
		usage: usage,
		subs: []*command{
			serverCommand,
			lsCommand,
			keyCommand,
			policyCommand,
			identityCommand,
			statusCommand,
			metricCommand,
			logCommand,
			completionCommand,
			migrateCommand,
			benchCommand,
		},
	}
	root.link()
}

// link sets the parent of every command below c.
func (c *command) link() {
	for _, sub := range c.subs {
		sub.parent = c
		sub.link()
	}
}

// path returns the words that name c after "kes": "" for the root.
func (c *command) path() string {
	if c.parent == nil || c.parent.parent == nil {
		return c.name
	}
	return c.parent.path() + " " + c.name
}

// cmdline returns the command line that runs c: "kes key info".
func (c *command) cmdline() string {
	return strings.TrimSpace("kes " + c.path())
}

// usagef returns a usage error of c, pointing to its help.
func (c *command) usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...) + ". See '" + c.cmdline() + " --help'"}
}

// call is one run of a leaf command: what its run function sees.
type call struct {
	*env
	cmd     *command
	args    []string
	decoded [][]byte // the base64 arguments of argRule.base64, nil if absent
	json    bool     // --json (optJSON)
	conn    *connFlags
}

// usagef returns a usage error of the running command.
func (c *call) usagef(format string, args ...any) error { return c.cmd.usagef(format, args...) }

// connect checks the connection settings and returns a session.
func (c *call) connect() (*session, error) { return c.conn.connect(c.env) }

// connected returns the run function of a command that connects right
// after its arguments are checked.
func connected(run func(ctx context.Context, c *call, s *session) error) runFunc {
	return func(ctx context.Context, c *call) error {
		s, err := c.connect()
		if err != nil {
			return err
		}
		return run(ctx, c, s)
	}
}

// checkArgs checks the arguments against the command's argRule and
// decodes its base64 arguments.
func (c *call) checkArgs() error {
	r := c.cmd.args
	switch {
	case len(c.args) < r.min:
		return c.usagef("missing %s", r.what)
	case r.max >= 0 && len(c.args) > r.max:
		return c.usagef("too many arguments")
	}
	for i, a := range c.args {
		if r.names >= 0 && i >= r.names {
			break
		}
		if err := checkKeyName(a); err != nil {
			return err
		}
	}
	c.decoded = make([][]byte, len(r.base64))
	for i, what := range r.base64 {
		if what == "" || i >= len(c.args) {
			continue
		}
		b, err := base64.StdEncoding.DecodeString(c.args[i])
		if err != nil {
			return withHint(fmt.Errorf("invalid %s: %w", what, err), fmt.Sprintf("the %s must be standard base64", what))
		}
		c.decoded[i] = b
	}
	return nil
}

// flagSet returns the FlagSet of the leaf c with all its options
// registered into cl, and its run function.
func (c *command) flagSet(cl *call) (*flag.FlagSet, runFunc) {
	fs := newFlagSet(c.path())
	switch {
	case c.opts&optConn != 0:
		cl.conn = addConnFlags(fs)
	case c.opts&optConnLong != 0:
		cl.conn = addConnFlagsNoShort(fs)
	}
	if c.opts&optJSON != 0 {
		boolFlag(fs, &cl.json, "json")
	}
	if c.opts&optColor != 0 {
		addColorFlag(fs, cl.env)
	}
	run := c.run
	if c.flags != nil {
		run = c.flags(fs)
	}
	return fs, run
}

// exec runs the command c with the arguments that follow its path.
func (c *command) exec(ctx context.Context, e *env, args []string) error {
	if c.subs == nil {
		cl := &call{env: e, cmd: c}
		fs, run := c.flagSet(cl)
		parse := parseFlags
		if c.flagsFirst {
			parse = parseFlagsFirst
		}
		rest, err := parse(fs, args)
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(e.stdout, c.usage)
			return nil
		}
		if err != nil {
			return c.usagef("%v", err)
		}
		cl.args = rest
		if !c.args.deferred {
			if err := cl.checkArgs(); err != nil {
				return err
			}
		}
		return run(ctx, cl)
	}

	if len(args) == 0 {
		if c.legacy != nil {
			return c.legacy(ctx, &call{env: e, cmd: c, args: args})
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
			return sub.exec(ctx, e, args[1:])
		}
	}
	if c.legacy != nil {
		return c.legacy(ctx, &call{env: e, cmd: c, args: args})
	}
	noun := c.path()
	if noun == "" {
		noun = "kes"
	}
	return &usageError{msg: fmt.Sprintf("%q is not a %s command. See '%s --help'", args[0], noun, c.cmdline())}
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

// parseFlagsFirst parses args with fs as the standard library does: the
// options end at the first argument.
func parseFlagsFirst(fs *flag.FlagSet, args []string) ([]string, error) {
	err := fs.Parse(args)
	return fs.Args(), err
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
