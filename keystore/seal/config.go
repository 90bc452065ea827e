package seal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/openkes/openkes/keystore"
	"github.com/openkes/openkes/keystore/vault"
)

// Config is the "seal" subsection of a key store that supports sealing.
// Exactly one of KEKFile and Vault is set.
type Config struct {
	// KEKFile is the path of a file holding the 256-bit KEK that seals
	// new values (see ReadKEKFile).
	KEKFile string `yaml:"kek_file"`
	// OldKEKFiles are KEKs replaced by the current one: values sealed
	// with them are still unsealed, new values are sealed with the
	// current KEK only. They may be used with either KEKFile or Vault.
	OldKEKFiles []string `yaml:"old_kek_files"`

	// Vault, if set, seals with a key of Vault's transit engine instead
	// of a local KEK; the KEK never leaves Vault.
	Vault *VaultConfig `yaml:"vault"`
}

// VaultConfig is the "seal.vault" subsection: how to reach and log in to
// Vault (the fields of keystore.vault: endpoint, namespace, approle or
// kubernetes, tls, status) and which transit key to use.
type VaultConfig struct {
	vault.ClientConfig `yaml:",inline"`
	Transit            vault.TransitConfig `yaml:"transit"`
}

// transitID is the KEK ID of a transit key: engine and key name, with
// the characters a KEK ID may not hold replaced.
func transitID(t vault.TransitConfig) string {
	engine := t.Engine
	if engine == "" {
		engine = vault.DefaultTransitEngine
	}
	return strings.NewReplacer(":", "_", "/", ".").Replace("vault-transit." + strings.Trim(engine, "/") + "." + t.Key)
}

// Validate reports every problem, each naming its field relative to the
// seal section ("kek_file: ..."). It reads the KEK files, so that a
// missing or malformed KEK is a config error rather than a failure of
// the first request.
func (c *Config) Validate() error {
	var errs []error
	hasFile := strings.TrimSpace(c.KEKFile) != ""
	switch {
	case hasFile && c.Vault != nil:
		errs = append(errs, errors.New("more than one KEK specified (kek_file, vault)"))
	case c.Vault != nil:
		errs = append(errs, prefixed("vault", c.Vault.ClientConfig.Validate())...)
		if strings.TrimSpace(c.Vault.Transit.Key) == "" {
			errs = append(errs, errors.New("vault.transit.key: required"))
		}
	case !hasFile:
		errs = append(errs, errors.New("no KEK specified (kek_file or vault)"))
	default:
		if _, err := ReadKEKFile(c.KEKFile); err != nil {
			errs = append(errs, fmt.Errorf("kek_file: %w", trimPrefix(err)))
		}
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

func (c *Config) open(_ context.Context, log *slog.Logger) (KEK, []KEK, error) {
	var old []KEK
	for _, f := range c.OldKEKFiles {
		k, err := ReadKEKFile(f)
		if err != nil {
			return nil, nil, err
		}
		old = append(old, k)
	}
	if c.Vault != nil {
		client, err := vault.NewClient(&c.Vault.ClientConfig, log)
		if err != nil {
			return nil, nil, fmt.Errorf("seal: %w", err)
		}
		kek := &TransitKEK{
			id:     transitID(c.Vault.Transit),
			t:      client.Transit(c.Vault.Transit.Engine, c.Vault.Transit.Key),
			closer: client,
		}
		return kek, old, nil
	}
	current, err := ReadKEKFile(c.KEKFile)
	if err != nil {
		return nil, nil, err
	}
	return current, old, nil
}

// unjoin returns the errors joined in err by errors.Join, or err itself.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, unjoin(e)...)
		}
		return out
	}
	return []error{err}
}

// PrefixErrors returns err with every joined error prefixed by "seal.",
// for a backend's Validate.
func PrefixErrors(err error) error { return errors.Join(prefixed("seal", err)...) }

// prefixed returns the errors joined in err, each relative to the
// subsection section: "field: msg" becomes "section.field: msg", any other
// message "section: msg".
func prefixed(section string, err error) []error {
	if err == nil {
		return nil
	}
	var out []error
	for _, e := range unjoin(err) {
		msg := e.Error()
		if field, rest, ok := strings.Cut(msg, ": "); ok && !strings.ContainsAny(field, " '") {
			out = append(out, fmt.Errorf("%s.%s: %s", section, field, rest))
			continue
		}
		out = append(out, fmt.Errorf("%s: %s", section, msg))
	}
	return out
}
