package seal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/openkes/openkes/keystore"
	"github.com/openkes/openkes/keystore/internal/registry"
)

// KEKConfig is the configuration of a KEK kept in a KMS, as decoded from
// its subsection of the seal section (seal.vault). The KMS's package
// implements it; keystore/all registers it with [RegisterKEK].
type KEKConfig interface {
	// Validate reports every problem of the configuration, joined with
	// errors.Join, each naming its field relative to the subsection
	// ("endpoint: required").
	Validate() error

	// Open returns the KEK. If the KEK implements io.Closer, the sealed
	// store closes it when it is closed.
	Open(ctx context.Context, log *slog.Logger) (KEK, error)
}

var kekKinds = registry.Registry[KEKConfig]{Caller: "seal: RegisterKEK"}

// RegisterKEK makes a KMS available as a KEK under the given subsection
// name of the seal section (for example "vault"). newConfig returns a
// fresh, empty configuration into which the subsection is decoded with
// yaml.v3. RegisterKEK panics if kind is registered twice.
func RegisterKEK(kind string, newConfig func() KEKConfig) { kekKinds.Register(kind, newConfig) }

// KEKKinds returns the sorted names of the registered KEK kinds.
func KEKKinds() []string { return kekKinds.Kinds() }

// notBuiltError is the error for a KEK kind left out of the binary by
// its build tag.
func notBuiltError(kind string) error {
	return fmt.Errorf("%s: not built into this binary (kes_omit_%s)", kind, kind)
}

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

	// AllowUnsealed makes the store return values stored unsealed,
	// logging every such read at WARN, instead of refusing them: for
	// the time of a migration to a sealed store (see [UnsealedError]).
	AllowUnsealed bool `yaml:"allow_unsealed"`

	// Vault, if set, seals with a key of Vault's transit engine instead
	// of a local KEK; the KEK never leaves Vault.
	Vault *VaultConfig `yaml:"vault"`
}

// VaultConfig is the "seal.vault" subsection. Its fields are those of
// the KEK kind "vault" registered with [RegisterKEK] (the transit KEK of
// keystore/vault: the connection settings of keystore.vault and the
// transit key), which it decodes into. KEKConfig is nil when the kind is
// not built into the binary.
type VaultConfig struct {
	KEKConfig
}

// UnmarshalYAML decodes the subsection into the registered KEK kind
// "vault", and fails if there is none.
func (c *VaultConfig) UnmarshalYAML(n *yaml.Node) error {
	return decodeKEK("vault", &c.KEKConfig, n)
}

func decodeKEK(kind string, conf *KEKConfig, n *yaml.Node) error {
	newConfig, ok := kekKinds.Lookup(kind)
	if !ok {
		return errors.New(strings.TrimPrefix(notBuiltError(kind).Error(), kind+": "))
	}
	c := newConfig()
	if err := n.Decode(c); err != nil {
		return err
	}
	*conf = c
	return nil
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
	case c.Vault != nil && c.Vault.KEKConfig == nil:
		errs = append(errs, notBuiltError("vault"))
	case c.Vault != nil:
		errs = append(errs, prefixed("vault", c.Vault.Validate())...)
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

// Wrap opens the KEKs and returns inner wrapped by a sealing Store,
// which logs to log. It closes inner if that fails. A nil c, a store
// section without a seal, returns inner as it is.
func (c *Config) Wrap(ctx context.Context, inner keystore.Store, log *slog.Logger) (keystore.Store, error) {
	if c == nil {
		return inner, nil
	}
	current, old, err := c.open(ctx, log)
	if err != nil {
		inner.Close()
		return nil, err
	}
	return WrapWith(inner, Options{AllowUnsealed: c.AllowUnsealed, Log: log}, current, old...), nil
}

func (c *Config) open(ctx context.Context, log *slog.Logger) (KEK, []KEK, error) {
	var old []KEK
	for _, f := range c.OldKEKFiles {
		k, err := ReadKEKFile(f)
		if err != nil {
			return nil, nil, err
		}
		old = append(old, k)
	}
	if c.Vault != nil {
		if c.Vault.KEKConfig == nil {
			return nil, nil, fmt.Errorf("seal: %w", notBuiltError("vault"))
		}
		kek, err := c.Vault.Open(ctx, log)
		if err != nil {
			return nil, nil, fmt.Errorf("seal: %w", err)
		}
		return kek, old, nil
	}
	current, err := ReadKEKFile(c.KEKFile)
	if err != nil {
		return nil, nil, err
	}
	return current, old, nil
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
	for _, e := range keystore.Unjoin(err) {
		msg := e.Error()
		if field, rest, ok := strings.Cut(msg, ": "); ok && !strings.ContainsAny(field, " '") {
			out = append(out, fmt.Errorf("%s.%s: %s", section, field, rest))
			continue
		}
		out = append(out, fmt.Errorf("%s: %s", section, msg))
	}
	return out
}
