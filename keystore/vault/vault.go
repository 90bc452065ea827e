// Package vault implements a [keystore.Store] on the K/V secrets engine
// of HashiCorp Vault (or OpenBao), with the entry layout of the original
// KES server, so that a Vault written by either server can be used by the
// other. [KEKConfig] is also a seal KEK kept in Vault's transit engine
// (see package keystore/seal).
//
// The package speaks Vault's HTTP API with net/http instead of using
// github.com/hashicorp/vault/api: the original's token bugs came from
// mixing its own renewal with the SDK's client state, and owning the few
// requests KES needs keeps every retry, timeout and token swap explicit
// and testable. The tests run against keystore/vault/vaulttest, a fake of
// Vault's published API, and against a real server when the
// KES_TEST_VAULT_* variables of harness_test.go are set.
//
// The settings of keystore.vault ([Config]) and how the store uses Vault
// (layout, concurrent creates, tokens, health) are described in
// docs/config.md#keystorevault.
package vault

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/openkes/openkes/internal/namelock"
	"github.com/openkes/openkes/keystore"
)

// Store is a key store in a Vault K/V secrets engine. It is safe for
// concurrent use.
type Store struct {
	c       *Client
	v2      bool
	engine  string // escaped mount path
	prefix  string // escaped folder, "" for the root of the engine
	transit *Transit

	// creating serialises Creates of one name on K/V v1, whose
	// read-then-write is not atomic.
	creating namelock.Set
}

var _ keystore.Store = (*Store)(nil)

// connect opens the store of a validated configuration.
func connect(conf *Config, log *slog.Logger) (*Store, error) {
	engine := conf.Engine
	if engine == "" {
		engine = DefaultEngine
	}
	enginePath, err := cleanPath(engine)
	if err != nil || enginePath == "" {
		return nil, fmt.Errorf("vault: engine: invalid mount path '%s'", engine)
	}
	prefix, err := cleanPath(conf.Prefix)
	if err != nil {
		return nil, fmt.Errorf("vault: prefix: %w", err)
	}
	var transitEngine string
	if conf.Transit.Key != "" {
		transitEngine = conf.Transit.Engine
		if transitEngine == "" {
			transitEngine = DefaultTransitEngine
		}
		if p, err := cleanPath(transitEngine); err != nil || p == "" {
			return nil, fmt.Errorf("vault: transit.engine: invalid mount path '%s'", transitEngine)
		}
	}
	c, err := NewClient(&conf.ClientConfig, log)
	if err != nil {
		return nil, err
	}
	s := &Store{
		c:      c,
		v2:     conf.Version == "v2",
		engine: escapePath(enginePath),
		prefix: escapePath(prefix),
	}
	if conf.Transit.Key != "" {
		s.transit = c.Transit(transitEngine, conf.Transit.Key)
	}
	return s, nil
}

// String returns "Hashicorp Vault: <endpoint>", the name shown in the
// start-up banner.
func (s *Store) String() string { return s.c.String() }

// Client returns the store's client, for sharing its Vault connection
// and token. Closing the store closes it.
func (s *Store) Client() *Client { return s.c }

// checkName rejects names that cannot be a single path segment. The
// server's name rules (1 to 80 of [A-Za-z0-9_-]) are stricter; this is
// defence in depth for callers that bypass it (kes migrate, library
// users).
func checkName(op, name string) error {
	if name == "" || name == "." || name == ".." || strings.Contains(name, "/") || !utf8.ValidString(name) {
		return fmt.Errorf("vault: %s %q: invalid key name", op, name)
	}
	return nil
}

// entryPath returns the escaped API path of a key's entry: for v2 below
// <engine>/<sub>/.
func (s *Store) entryPath(sub, name string) string {
	if !s.v2 {
		sub = ""
	}
	return join(s.engine, sub, s.prefix, url.PathEscape(name))
}

// entry states of a read.
type entryState int

const (
	absent  entryState = iota
	present            // an entry with the key's field
	deleted            // K/V v2: version 1 was deleted or destroyed
)

// read reads the stored value of name (a transit ciphertext is returned
// as it is). An entry without the key's field is an error
// (*NoFieldError).
func (s *Store) read(ctx context.Context, name string) (string, entryState, error) {
	r := &apiRequest{method: http.MethodGet, path: s.entryPath("data", name), namespace: s.c.namespace}
	if s.v2 {
		r.query = url.Values{"version": {"1"}}
	}
	resp, err := s.c.do(ctx, r)
	if err != nil {
		return "", absent, err
	}
	switch {
	case resp.status == http.StatusNotFound && s.v2 && isDeletedKV2(resp.body):
		return "", deleted, nil
	case resp.status == http.StatusNotFound:
		return "", absent, nil
	case resp.status != http.StatusOK:
		return "", absent, resp.err()
	case !s.v2:
		v, err := decodeKV1(resp.body, name)
		if err != nil {
			return "", absent, err
		}
		return v, present, nil
	}
	v, del, err := decodeKV2(resp.body, name)
	switch {
	case err != nil:
		return "", absent, err
	case del:
		return "", deleted, nil
	}
	return v, present, nil
}

// Create stores value under name if no key of that name exists. It
// returns an error wrapping [keystore.ErrExists] if one does (on K/V v2
// also when a concurrent Create won), *[NoFieldError] if an entry not
// written by KES is in the way, an error for a K/V v2 entry whose
// version 1 was deleted outside of KES (Delete clears it), an error for
// a value that is not valid UTF-8 text (Vault stores strings; the server
// only stores text) unless transit is used, and otherwise the errors of
// Vault: *[ResponseError], or *keystore.UnreachableError while Vault is
// sealed, unreachable or no login succeeds.
func (s *Store) Create(ctx context.Context, name string, value []byte) error {
	if err := checkName("create", name); err != nil {
		return err
	}
	if s.transit == nil && !utf8.Valid(value) {
		return fmt.Errorf("vault: create %q: the value is not valid UTF-8 text", name)
	}
	if !s.v2 {
		defer s.creating.Lock(name)()
	}
	_, state, err := s.read(ctx, name)
	switch {
	case err != nil:
		return fmt.Errorf("vault: create %q: %w", name, err)
	case state == present:
		return fmt.Errorf("vault: create %q: %w", name, keystore.ErrExists)
	case state == deleted:
		return fmt.Errorf("vault: create %q: the entry's version 1 was deleted outside of KES; delete the key to clear it", name)
	}

	stored := string(value)
	if s.transit != nil {
		if stored, err = s.transit.Encrypt(ctx, value); err != nil {
			return fmt.Errorf("vault: create %q: %w", name, err)
		}
	}
	data := map[string]string{name: stored}
	var body any = data
	if s.v2 {
		body = map[string]any{"options": map[string]int{"cas": 0}, "data": data}
	}
	resp, err := s.c.do(ctx, &apiRequest{method: http.MethodPut, path: s.entryPath("data", name), body: body, namespace: s.c.namespace})
	if err != nil {
		return fmt.Errorf("vault: create %q: %w", name, err)
	}
	switch {
	case resp.status == http.StatusOK || resp.status == http.StatusNoContent:
		return nil
	case s.v2 && resp.status == http.StatusBadRequest && isCASError(resp.body):
		return fmt.Errorf("vault: create %q: %w", name, keystore.ErrExists)
	}
	return fmt.Errorf("vault: create %q: %w", name, resp.err())
}

// isCASError reports whether a 400 answer is K/V v2's check-and-set
// mismatch ("check-and-set parameter did not match the current
// version").
func isCASError(body []byte) bool {
	for _, e := range decodeErrors(body) {
		if strings.Contains(e, "check-and-set") {
			return true
		}
	}
	return false
}

// Get returns the value stored under name, decrypted with transit if it
// is a transit ciphertext. It returns an error wrapping
// [keystore.ErrNotFound] if there is no such key (on K/V v2 also if its
// version 1 was deleted), *[NoFieldError] for an entry not written by
// KES, an error for a transit ciphertext when no transit key is
// configured, and the errors of Vault as for Create.
func (s *Store) Get(ctx context.Context, name string) ([]byte, error) {
	if err := checkName("get", name); err != nil {
		return nil, err
	}
	v, state, err := s.read(ctx, name)
	switch {
	case err != nil:
		return nil, fmt.Errorf("vault: get %q: %w", name, err)
	case state != present:
		return nil, fmt.Errorf("vault: get %q: %w", name, keystore.ErrNotFound)
	case !isTransitCiphertext(v):
		return []byte(v), nil
	case s.transit == nil:
		return nil, fmt.Errorf("vault: get %q: the value is a Vault transit ciphertext, but no transit key is configured", name)
	}
	plaintext, err := s.transit.Decrypt(ctx, v)
	if err != nil {
		return nil, fmt.Errorf("vault: get %q: %w", name, err)
	}
	return plaintext, nil
}

// Delete removes the key: on K/V v1 its entry, on v2 the entry's
// metadata and all versions. It returns an error wrapping
// [keystore.ErrNotFound] if there is no such key (a K/V v2 entry whose
// version 1 was deleted outside of KES is removed all the same),
// *[NoFieldError] for an entry not written by KES (which is left alone),
// and the errors of Vault as for Create.
func (s *Store) Delete(ctx context.Context, name string) error {
	if err := checkName("delete", name); err != nil {
		return err
	}
	_, state, err := s.read(ctx, name)
	switch {
	case err != nil:
		return fmt.Errorf("vault: delete %q: %w", name, err)
	case state == absent:
		return fmt.Errorf("vault: delete %q: %w", name, keystore.ErrNotFound)
	}
	resp, err := s.c.do(ctx, &apiRequest{method: http.MethodDelete, path: s.entryPath("metadata", name), namespace: s.c.namespace})
	if err != nil {
		return fmt.Errorf("vault: delete %q: %w", name, err)
	}
	if resp.status != http.StatusNoContent && resp.status != http.StatusOK {
		return fmt.Errorf("vault: delete %q: %w", name, resp.err())
	}
	if state == deleted {
		return fmt.Errorf("vault: delete %q: %w", name, keystore.ErrNotFound)
	}
	return nil
}

// List returns the names of the entries in the store's folder that start
// with prefix, paged as described at [keystore.Store.List]. Sub-folders
// are skipped; an empty or missing folder is an empty list. Errors are
// those of Vault as for Create, and an error for a response larger than
// 32 MiB.
func (s *Store) List(ctx context.Context, prefix string, n int) ([]string, string, error) {
	folder := join(s.engine, "", s.prefix)
	if s.v2 {
		folder = join(s.engine, "metadata", s.prefix)
	}
	resp, err := s.c.do(ctx, &apiRequest{
		method:    http.MethodGet,
		path:      folder + "/",
		query:     url.Values{"list": {"true"}},
		namespace: s.c.namespace,
		limit:     maxListResponse,
	})
	if err != nil {
		return nil, "", fmt.Errorf("vault: list: %w", err)
	}
	var keys []string
	switch resp.status {
	case http.StatusNotFound:
	case http.StatusOK:
		if keys, err = decodeList(resp.body); err != nil {
			return nil, "", fmt.Errorf("vault: list: %w", err)
		}
	default:
		return nil, "", fmt.Errorf("vault: list: %w", resp.err())
	}
	names := make([]string, 0, len(keys))
	for _, k := range keys {
		if k != "" && !strings.HasSuffix(k, "/") && strings.HasPrefix(k, prefix) {
			names = append(names, k)
		}
	}
	page, next := keystore.Page(names, prefix, n)
	return page, next, nil
}

// Status asks Vault's sys/health and returns its latency; see
// [Client.Status] for the errors.
func (s *Store) Status(ctx context.Context) (keystore.State, error) { return s.c.Status(ctx) }

// Close stops the client's background work; see [Client.Close].
func (s *Store) Close() error { return s.c.Close() }
