package vault

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/openkes/openkes/keystore/seal"
)

// KEKConfig is the "seal.vault" subsection of the fs and etcd key stores:
// a key-encryption key kept in Vault's transit engine (see package
// keystore/seal). keystore/all registers it with seal.RegisterKEK as
// "vault", so that a binary built with kes_omit_vault has no Vault code.
type KEKConfig struct {
	// ClientConfig holds the settings of keystore.vault to reach and
	// log in to Vault.
	ClientConfig `yaml:",inline"`

	// Transit names the transit key; Transit.Key is required.
	Transit TransitConfig `yaml:"transit"`
}

// NewKEKConfig returns an empty KEKConfig, for seal.RegisterKEK.
func NewKEKConfig() seal.KEKConfig { return new(KEKConfig) }

var _ seal.KEKConfig = (*KEKConfig)(nil)

// Validate returns, joined with errors.Join, every problem of the
// subsection, each naming its field relative to it ("endpoint: required",
// "transit.key: required").
func (c *KEKConfig) Validate() error {
	errs := []error{c.ClientConfig.Validate()}
	if blank(c.Transit.Key) {
		errs = append(errs, errors.New("transit.key: required"))
	}
	return errors.Join(errs...)
}

// Open returns a [*TransitKEK] with its own Vault client, which logs to
// log (nil discards). It does not wait for Vault (see [NewClient]); it
// fails for invalid settings only.
func (c *KEKConfig) Open(_ context.Context, log *slog.Logger) (seal.KEK, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	client, err := NewClient(&c.ClientConfig, log)
	if err != nil {
		return nil, err
	}
	return &TransitKEK{
		id:     transitKEKID(c.Transit),
		t:      client.Transit(c.Transit.Engine, c.Transit.Key),
		client: client,
	}, nil
}

// transitKEKID is the KEK ID of a transit key, "vault-transit.<engine>.<key>",
// with the characters a KEK ID may not hold replaced.
func transitKEKID(t TransitConfig) string {
	engine := t.Engine
	if engine == "" {
		engine = DefaultTransitEngine
	}
	return strings.NewReplacer(":", "_", "/", ".").Replace("vault-transit." + strings.Trim(engine, "/") + "." + t.Key)
}

// TransitKEK is a seal.KEK kept in Vault's transit engine: sealing and
// unsealing are Vault requests, the KEK never leaves Vault.
type TransitKEK struct {
	id     string
	t      *Transit
	client *Client
}

var _ seal.KEK = (*TransitKEK)(nil)

// ID returns "vault-transit.<engine>.<key>".
func (k *TransitKEK) ID() string { return k.id }

// Seal encrypts name and value as one transit plaintext: the length of
// the name in one byte, the name, then the value. Errors are those of
// [Transit.Encrypt].
func (k *TransitKEK) Seal(ctx context.Context, name string, value []byte) (string, error) {
	if len(name) > 255 {
		return "", errors.New("key name too long to seal")
	}
	plain := make([]byte, 0, 1+len(name)+len(value))
	plain = append(plain, byte(len(name)))
	plain = append(plain, name...)
	plain = append(plain, value...)
	defer clear(plain)
	return k.t.Encrypt(ctx, plain)
}

// Unseal reverses Seal. A payload sealed for another key name fails with
// an error wrapping seal.ErrUnseal; other errors are those of
// [Transit.Decrypt].
func (k *TransitKEK) Unseal(ctx context.Context, name, payload string) ([]byte, error) {
	plain, err := k.t.Decrypt(ctx, payload)
	if err != nil {
		return nil, err
	}
	if len(plain) < 1 || len(plain) < 1+int(plain[0]) || string(plain[1:1+int(plain[0])]) != name {
		clear(plain)
		return nil, fmt.Errorf("%w: the value belongs to another key name", seal.ErrUnseal)
	}
	return plain[1+int(plain[0]):], nil
}

// Close closes the Vault client.
func (k *TransitKEK) Close() error { return k.client.Close() }
