// Package cli implements the kes command: the server and, in later
// releases, the client commands of upstream KES.
//
// Every command writes its normal output to stdout and its errors to
// stderr as "kes: error: <what went wrong>", optionally followed by a line
// "kes: hint: <what to do>". Exit codes: 0 success, 1 failure, 2 usage.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
)

// SIGTERM is re-exported so that cmd/kes needs no syscall import.
const SIGTERM = syscall.SIGTERM

const usage = `Usage:
    kes [options] <command>

Commands:
    server                   Start a KES server.

Options:
    -v, --version            Print version information.
    -h, --help               Print command line options.

Examples:
    $ kes server --dev
    $ kes server --config config.yml
`

// env is what a command sees of its environment.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

// usageError is a command-line usage problem: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// hintError carries a hint for the user in addition to the error.
type hintError struct {
	err  error
	hint string
}

func (e *hintError) Error() string { return e.err.Error() }
func (e *hintError) Unwrap() error { return e.err }

// Run runs the kes command with the given arguments (without the program
// name) and returns the process exit code.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	case "-v", "--version", "version":
		fmt.Fprintf(stdout, "Version    %s\nRuntime    %s %s/%s\nLicense    Apache-2.0\n", buildVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return 0
	case "server":
		err = runServer(ctx, e, rest)
	default:
		err = &usageError{msg: fmt.Sprintf("%q is not a kes command. See 'kes --help'", cmd)}
	}
	return e.exit(err)
}

// exit prints err (if any) and returns the exit code for it.
func (e *env) exit(err error) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		if err != nil {
			return 2
		}
		return 0
	}
	fmt.Fprintf(e.stderr, "kes: error: %v\n", err)
	var h *hintError
	if errors.As(err, &h) && h.hint != "" {
		fmt.Fprintf(e.stderr, "kes: hint: %s\n", h.hint)
	}
	var u *usageError
	if errors.As(err, &u) {
		return 2
	}
	return 1
}

// buildVersion returns the version recorded by the Go toolchain: the VCS
// commit time in the upstream tag format, or the module version.
func buildVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "<unknown>"
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.time" {
			return strings.ReplaceAll(s.Value, ":", "-")
		}
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	return "<unknown>"
}
