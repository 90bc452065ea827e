package vault

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
)

// Transit encrypts and decrypts with one key of a Vault transit secrets
// engine, through a [Client]. It is safe for concurrent use.
type Transit struct {
	c          *Client
	key        string
	encryptURL string // escaped API paths
	decryptURL string
}

// Transit returns a handle for the key named key of the transit engine
// mounted at engine ("" means "transit") in the client's namespace. It
// does not contact Vault.
func (c *Client) Transit(engine, key string) *Transit {
	if engine == "" {
		engine = DefaultTransitEngine
	}
	// A malformed engine path is kept as given: Vault will answer 404,
	// which names the problem well enough. Config.Connect rejects it
	// earlier.
	clean, err := cleanPath(engine)
	if err != nil {
		clean = engine
	}
	e := escapePath(clean)
	return &Transit{
		c:          c,
		key:        key,
		encryptURL: join(e, "encrypt", escapePath(key)),
		decryptURL: join(e, "decrypt", escapePath(key)),
	}
}

// isTransitCiphertext reports whether s looks like a transit ciphertext:
// "vault:v<digits>:...". No KES value can: they are base64 or JSON.
func isTransitCiphertext(s string) bool {
	rest, ok := strings.CutPrefix(s, "vault:v")
	if !ok {
		return false
	}
	i := 0
	for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
		i++
	}
	return i > 0 && i+1 < len(rest) && rest[i] == ':'
}

// Encrypt encrypts plaintext with the transit key and returns Vault's
// ciphertext ("vault:v<N>:..."). Vault creates the key on first use if
// the token's policy allows it. Errors wrap *[ResponseError] for Vault's
// answers, and *keystore.UnreachableError when Vault is unreachable or
// sealed.
func (t *Transit) Encrypt(ctx context.Context, plaintext []byte) (string, error) {
	body := map[string]string{"plaintext": base64.StdEncoding.EncodeToString(plaintext)}
	resp, err := t.c.do(ctx, &apiRequest{method: http.MethodPost, path: t.encryptURL, body: body, namespace: t.c.namespace})
	clear(body)
	if err != nil {
		return "", fmt.Errorf("vault: transit encrypt with key %q: %w", t.key, err)
	}
	if resp.status != http.StatusOK {
		return "", fmt.Errorf("vault: transit encrypt with key %q: %w", t.key, resp.err())
	}
	ct, err := decodeDataString(resp.body, "ciphertext")
	if err != nil {
		return "", fmt.Errorf("vault: transit encrypt with key %q: %w", t.key, err)
	}
	if !isTransitCiphertext(ct) {
		return "", fmt.Errorf("vault: transit encrypt with key %q: the response is not a transit ciphertext", t.key)
	}
	return ct, nil
}

// Decrypt decrypts a ciphertext of [Transit.Encrypt]. Errors are as for
// Encrypt; a ciphertext Vault cannot decrypt (wrong key, tampered) gives
// a *ResponseError with status 400.
func (t *Transit) Decrypt(ctx context.Context, ciphertext string) ([]byte, error) {
	resp, err := t.c.do(ctx, &apiRequest{method: http.MethodPost, path: t.decryptURL, body: map[string]string{"ciphertext": ciphertext}, namespace: t.c.namespace})
	if err != nil {
		return nil, fmt.Errorf("vault: transit decrypt with key %q: %w", t.key, err)
	}
	if resp.status != http.StatusOK {
		return nil, fmt.Errorf("vault: transit decrypt with key %q: %w", t.key, resp.err())
	}
	b64, err := decodeDataString(resp.body, "plaintext")
	clear(resp.body)
	if err != nil {
		return nil, fmt.Errorf("vault: transit decrypt with key %q: %w", t.key, err)
	}
	plaintext, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("vault: transit decrypt with key %q: the plaintext is not base64", t.key)
	}
	return plaintext, nil
}
