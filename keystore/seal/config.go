package seal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/openkes/openkes/keystore"
)

// Config is the "seal" subsection of a key store that supports sealing.
// Exactly one of KEKFile and Vault is set.
type Config struct {
	// KEKFile is the path of a file holding the 256-bit KEK that seals
	// new values (see ReadKEKFile).
	KEKFile string `yaml:"kek_file"`
	// OldKEKFiles are KEKs replaced by KEKFile: values sealed with them
	// are still unsealed, new values are sealed with KEKFile only.
	OldKEKFiles []string `yaml:"old_kek_files"`
}

// Validate reports every problem, each naming its field relative to the
// seal section ("kek_file: ..."). It reads the KEK files, so that a
// missing or malformed KEK is a config error rather than a failure of
// the first request.
func (c *Config) Validate() error {
	var errs []error
	if strings.TrimSpace(c.KEKFile) == "" {
		errs = append(errs, errors.New("kek_file: required"))
	} else if _, err := ReadKEKFile(c.KEKFile); err != nil {
		errs = append(errs, fmt.Errorf("kek_file: %w", trimPrefix(err)))
	}
	for i, f := range c.OldKEKFiles {
		if _, err := ReadKEKFile(f); err != nil {
			errs = append(errs, fmt.Errorf("old_kek_files[%d]: %w", i, trimPrefix(err)))
		}
	}
	return errors.Join(errs...)
}

// trimPrefix drops the "seal: " of this package's errors for messages
// that the config parser prefixes with the field path anyway.
func trimPrefix(err error) error {
	if msg, ok := strings.CutPrefix(err.Error(), "seal: "); ok {
		return errors.New(msg)
	}
	return err
}

// Wrap opens the KEKs and returns inner wrapped by a sealing Store. It
// closes inner if that fails.
func (c *Config) Wrap(ctx context.Context, inner keystore.Store, log *slog.Logger) (keystore.Store, error) {
	current, old, err := c.open(ctx, log)
	if err != nil {
		inner.Close()
		return nil, err
	}
	return Wrap(inner, current, old...), nil
}

func (c *Config) open(_ context.Context, _ *slog.Logger) (KEK, []KEK, error) {
	current, err := ReadKEKFile(c.KEKFile)
	if err != nil {
		return nil, nil, err
	}
	var old []KEK
	for _, f := range c.OldKEKFiles {
		k, err := ReadKEKFile(f)
		if err != nil {
			return nil, nil, err
		}
		old = append(old, k)
	}
	return current, old, nil
}

// PrefixErrors returns err with every joined error prefixed by "seal.",
// for a backend's Validate.
func PrefixErrors(err error) error {
	if err == nil {
		return nil
	}
	var out []error
	var walk func(error)
	walk = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		msg := e.Error()
		if field, rest, ok := strings.Cut(msg, ": "); ok && !strings.ContainsAny(field, " '") {
			out = append(out, fmt.Errorf("seal.%s: %s", field, rest))
			return
		}
		out = append(out, fmt.Errorf("seal: %s", msg))
	}
	walk(err)
	return errors.Join(out...)
}
