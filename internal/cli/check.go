package cli

import (
	"errors"
	"fmt"

	"github.com/openkes/openkes/config"
	"github.com/openkes/openkes/internal/https"
)

// checkConfig validates a server config file without starting a server:
// `kes server --config FILE --check` and `kes config check FILE`. It
// reads and validates the file as `kes server` does (with the same
// command-line overrides), loads the TLS certificate, key and CAs, and
// checks that the key store kind is built in, but does not connect to the
// key store. Every problem and warning is printed; the error is nil if
// the file is usable (and, with strict, has no warnings).
func (e *env) checkConfig(path string, o config.Overrides, strict bool) error {
	warn := func(warnings []string) {
		for _, w := range warnings {
			fmt.Fprintf(e.stderr, "%s %s\n", e.errStyle(sgrYellow).wrap("kes: warning:"), w)
		}
	}
	file, err := config.ReadFile(path, o)
	var ce *config.Error
	if errors.As(err, &ce) {
		warn(ce.Warnings)
		for _, p := range ce.Problems[:len(ce.Problems)-1] {
			fmt.Fprintf(e.stderr, "%s %s%v\n", e.errStyle(sgrRed, sgrBold).wrap("kes: error:"), locate(path, p.Line), p)
		}
		last := ce.Problems[len(ce.Problems)-1]
		return fmt.Errorf("%s%v", locate(path, last.Line), last)
	}
	if err != nil {
		return err
	}
	warn(file.Warnings)
	if err := file.KeyStoreError(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if _, err := https.LoadCertificate(file.TLS.CertFile, file.TLS.KeyFile, file.TLS.Password); err != nil {
		return fmt.Errorf("%s: tls: %w", path, err)
	}
	if file.TLS.CAFile != "" {
		if _, err := https.LoadCertPool(file.TLS.CAFile); err != nil {
			return fmt.Errorf("%s: tls.ca: %w", path, err)
		}
	}
	if strict && len(file.Warnings) > 0 {
		return withHint(fmt.Errorf("%s: %d warning(s) and --strict", path, len(file.Warnings)), "fix the warnings above, or check without --strict")
	}
	fmt.Fprintf(e.stdout, "%s: OK (keystore %s, %d policies)\n", path, file.KeyStoreKind, len(file.Policies))
	return nil
}

// locate is the "<file>:<line>: " prefix of a problem.
func locate(path string, line int) string {
	if line > 0 {
		return fmt.Sprintf("%s:%d: ", path, line)
	}
	return path + ": "
}

const configUsage = `Usage:
    kes config check [--strict] <config-file>

Validates a server configuration file without starting a server, as
'kes server --config <file> --check' does: the YAML, every setting, the
policies, and the TLS files it names. The key store is not contacted.
Exit code 0 if the file is usable, 1 if not, 2 for usage errors.

Options:
    --strict                 Fail on warnings too.
    -h, --help               Print command line options.

Examples:
  1. Check a file in CI before deploying it:
     $ kes config check --strict /etc/kes/config.yml
`

// runConfig runs 'kes config check'.
func runConfig(e *env, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(e.stdout, configUsage)
		if len(args) == 0 {
			return &usageError{msg: "missing command. See 'kes config --help'"}
		}
		return nil
	}
	if args[0] != "check" {
		return &usageError{msg: fmt.Sprintf("unknown command %q. See 'kes config --help'", args[0])}
	}
	strict := false
	var files []string
	for _, a := range args[1:] {
		switch a {
		case "--strict", "-strict":
			strict = true
		case "-h", "--help":
			fmt.Fprint(e.stdout, configUsage)
			return nil
		default:
			if len(a) > 1 && a[0] == '-' {
				return &usageError{msg: fmt.Sprintf("unknown flag %q. See 'kes config --help'", a)}
			}
			files = append(files, a)
		}
	}
	if len(files) != 1 {
		return &usageError{msg: "expected one config file. See 'kes config --help'"}
	}
	return e.checkConfig(files[0], config.Overrides{}, strict)
}
