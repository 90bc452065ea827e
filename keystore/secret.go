package keystore

import (
	"errors"
	"fmt"
	"log/slog"
)

// Secret is a configuration value that must never be printed: a password,
// a Vault secret ID, a token. Its String, GoString and LogValue return
// "[REDACTED]" and it refuses to be marshalled as JSON or text, so a
// config struct holding one can be logged or dumped with %v and %#v
// without leaking it. Read the value with [Secret.Reveal].
//
// It decodes from YAML (and any other text format) as a plain string.
// The zero value is the empty secret.
type Secret struct {
	v string
}

// NewSecret returns a Secret holding s.
func NewSecret(s string) Secret { return Secret{v: s} }

// Reveal returns the secret value. Call it only where the value is sent
// to the system that needs it.
func (s Secret) Reveal() string { return s.v }

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return s.v == "" }

const redacted = "[REDACTED]"

func (s Secret) String() string             { return redacted }
func (s Secret) GoString() string           { return redacted }
func (s Secret) LogValue() slog.Value       { return slog.StringValue(redacted) }
func (s Secret) Format(f fmt.State, _ rune) { f.Write([]byte(redacted)) }

var errSecretMarshal = errors.New("keystore: a Secret cannot be marshalled")

// MarshalText always fails: secrets are not serialised.
func (s Secret) MarshalText() ([]byte, error) { return nil, errSecretMarshal }

// MarshalJSON always fails: secrets are not serialised.
func (s Secret) MarshalJSON() ([]byte, error) { return nil, errSecretMarshal }

// UnmarshalText sets the secret to text.
func (s *Secret) UnmarshalText(text []byte) error {
	s.v = string(text)
	return nil
}
