// Package cli implements the kes command: the server and the client
// commands of upstream KES (ls, key, policy, identity, status, metric,
// log), plus shell completion.
//
// # Output
//
// Every command writes its normal output to stdout and its errors to
// stderr as "kes: error: <what went wrong>", optionally followed by a line
// "kes: hint: <what to do>". Exit codes: 0 success, 1 failure, 2 usage.
//
// Commands print text for people on a terminal. Where upstream KES prints
// JSON when stdout is not a terminal (key encrypt|decrypt|dek, policy
// show, identity of), so do we; --json asks for JSON everywhere. JSON is
// indented and ends with a newline on a terminal, and is compact without
// trailing newline otherwise; streams (log, metric) print one object per
// line.
//
// Colour is used only on a terminal, never when NO_COLOR is set, unless
// --color always asks for it.
//
// # Commands
//
// Every command is a node of one tree (command.go): its name, usage
// text, shared options (connection, --json, --color), argument rules and
// run function. The tree derives each command's path ("key info") for
// usage errors, parses the options, checks the arguments and hands the
// run function a call with what it needs; completion walks the same
// tree. The copy engine of 'kes migrate' is the library package
// keystore/migrate.
//
// # Flags
//
// Each command has its own [flag.FlagSet] with the short and the long
// name of each option registered. Unlike the stdlib default, flags may
// follow arguments (kes key info my-key --json), as with upstream's
// command-line parser; "--" ends the flags.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"syscall"

	"github.com/openkes/openkes/server"
)

// SIGTERM is re-exported so that cmd/kes needs no syscall import.
const SIGTERM = syscall.SIGTERM

const usage = `Usage:
    kes <command> [options] [arguments]

Commands:
    server                   Start a KES server.
    config                   Check a server configuration file.
    ls                       List keys, policies or identities.
    key                      Create, inspect and use cryptographic keys.
    policy                   Inspect policies.
    identity                 Create API keys and certificates, inspect identities.
    status                   Show the status of one or more KES servers.
    metric                   Watch the request rates and latencies of a server.
    log                      Watch the audit or error log of a server.
    migrate                  Copy keys between key stores.
    bench                    Measure a server's throughput and latency.
    completion               Print a bash or zsh completion script.

Options:
    -v, --version            Print version information.
    -h, --help               Print command line options.

Connection settings of the client commands (flags override variables):
    -s, --server <host:port>  KES_SERVER, MINIO_KES_SERVER, MINIO_KMS_KES_ENDPOINT
                              Comma-separated; default 127.0.0.1:7373.
    -a, --api-key <key>       KES_API_KEY, MINIO_KES_API_KEY, MINIO_KMS_KES_API_KEY
    client certificate        KES_CLIENT_CERT, MINIO_KES_CERT_FILE, ...
    client private key        KES_CLIENT_KEY, MINIO_KES_KEY_FILE, ...
    --ca <file|dir>           KES_CA, MINIO_KMS_KES_CAPATH
    -k, --insecure            Do not verify the server certificate.

Run 'kes <command> --help' for the options of a command.

Examples:
  1. Start a development server and talk to it:
     $ kes server --dev
     $ export KES_SERVER=https://127.0.0.1:7373 KES_API_KEY=kes:v1:...
     $ kes key create my-key -k
     $ kes key dek my-key -k

  2. Check a production server:
     $ export KES_SERVER=kes-1.example.com:7373,kes-2.example.com:7373
     $ kes status
`

// testMode is set by the tests of this package, in the process that runs
// the kes command: it makes KES_FORCE_TTY effective. Production binaries
// never honour that variable.
var testMode bool

// env is what a command sees of its environment.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string

	// inTTY, outTTY and errTTY report whether stdin, stdout and stderr
	// are terminals.
	inTTY, outTTY, errTTY bool

	// color is the --color mode of the running command: "auto" (also
	// when empty), "never" or "always".
	color string

	// readPassword prompts for a password without echo.
	readPassword func(prompt string) ([]byte, error)
}

// newEnv returns the env of Run, looking at the real process.
func newEnv(stdin io.Reader, stdout, stderr io.Writer) *env {
	e := &env{
		stdin:  stdin,
		stdout: stdout,
		stderr: stderr,
		getenv: os.Getenv,
		inTTY:  isTerminal(stdin),
		outTTY: isTerminal(stdout),
		errTTY: isTerminal(stderr),
	}
	e.readPassword = e.promptPassword
	if testMode {
		switch os.Getenv("KES_FORCE_TTY") {
		case "1":
			e.outTTY, e.errTTY = true, true
		case "0":
			// Also no password prompts, even if 'go test' was started
			// from a terminal that /dev/tty would reach.
			e.inTTY, e.outTTY, e.errTTY = false, false, false
			e.readPassword = func(string) ([]byte, error) { return nil, errNoTerminal }
		}
	}
	return e
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

// withHint adds a hint to err; it returns nil for a nil err and err for
// an empty hint.
func withHint(err error, hint string) error {
	if err == nil || hint == "" {
		return err
	}
	return &hintError{err: err, hint: hint}
}

// Run runs the kes command with the arguments given (without the program
// name) and returns the process exit code.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := newEnv(stdin, stdout, stderr)
	return e.exit(run(ctx, e, args))
}

// run runs the command named by args, after the words that only the
// top level knows.
func run(ctx context.Context, e *env, args []string) error {
	if len(args) > 0 {
		switch cmd, rest := args[0], args[1:]; cmd {
		case "help":
			if len(rest) > 0 {
				// kes help key info == kes key info --help
				return run(ctx, e, append(slices.Clone(rest), "--help"))
			}
		case "-v", "--version", "-version", "version":
			version, commit := server.BuildVersion()
			fmt.Fprintf(e.stdout, "Version    %s\nCommit     %s\nRuntime    %s %s/%s\nLicense    Apache-2.0\nCopyright  OpenKES authors\n", version, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		case "--auto-completion":
			return withHint(&usageError{msg: "'--auto-completion' is not supported"},
				"print a completion script with 'kes completion bash' or 'kes completion zsh' and source it")
		case "config":
			// Parses its own arguments, with messages of its own.
			return runConfig(e, rest)
		}
	}
	return root.exec(ctx, e, args)
}

// exit prints err (if any) and returns the exit code for it.
func (e *env) exit(err error) int {
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		return 2
	}
	red, yellow := e.errStyle(sgrRed, sgrBold), e.errStyle(sgrYellow)
	fmt.Fprintf(e.stderr, "%s %v\n", red.wrap("kes: error:"), err)
	var h *hintError
	if errors.As(err, &h) && h.hint != "" {
		fmt.Fprintf(e.stderr, "%s %s\n", yellow.wrap("kes: hint:"), h.hint)
	}
	var u *usageError
	if errors.As(err, &u) {
		return 2
	}
	return 1
}
