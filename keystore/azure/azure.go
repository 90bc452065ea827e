// Package azure implements a [keystore.Store] on the secrets of an Azure
// Key Vault, with the layout of the original KES server, so that a vault
// written by either server can be used by the other.
//
// # Layout
//
// A key is one Key Vault secret whose value is the stored key (the text
// the server writes; see internal/crypto). The secret is named like the
// key, as with the original server, when the key's name is made of
// lower-case letters, digits and '-'. Key Vault names are
// case-insensitive and cannot hold '_', so other KES names are encoded
// (see names.go): "MY-KEY" is the secret "kes---m-y-1-k-e-y". A key with
// upper-case letters written by the original server under its own name
// is still found, read and deleted under that name.
//
// Get lists the secret's versions and reads the oldest one, as the
// original does: a version added later by someone else (or by a
// concurrent Create on another server, see below) never changes a key.
// A disabled, not yet valid or expired oldest version is an error.
//
// # Creating keys
//
// Key Vault has no create-if-absent: setting a secret that exists adds a
// version. Create therefore reads the secret first (existing:
// [keystore.ErrExists]), sets it, and then lists its versions: if the
// version it wrote is not the only oldest one, another server created
// the key at the same moment, and Create returns ErrExists too (of
// versions set within the same second, which Key Vault's timestamps
// cannot order, all writers yield; readers use one of them). Because
// of that resolution, Create waits a second before it lists the
// versions, so that a version set just after its own cannot tie with
// it unseen: a Create of a new key takes a second longer. Creates
// of one name are serialised inside one Store, so of concurrent Creates
// in one process exactly one succeeds. Across servers, the loser's
// value remains as a newer, unused version.
//
// # Soft delete
//
// Delete deletes the secret and then purges it, retrying while Key Vault
// reports ObjectIsBeingDeleted; a purge that still fails (purge
// protection, a policy that forbids it, an outage) is logged and the key
// counts as deleted. Creating a name that is soft-deleted
// (ObjectIsDeletedButRecoverable or ObjectIsBeingDeleted) purges the
// deleted secret first and sets it again; if the vault forbids the purge
// (403, ForbiddenByPolicy), Create fails with an error that says so.
//
// # Credentials and errors
//
// A service principal's client secret (credentials), a user-assigned
// managed identity (managed_identity) or Azure's default credential
// chain log in through azidentity, which caches tokens and refreshes
// them before they expire. Failed logins are retried with exponential
// backoff (at most 10 s apart); meanwhile requests fail at once with the
// last login error. Every operation is bounded by a timeout (10 s), the
// SDK's own retries included (2 retries, 200 to 800 ms apart). Network
// failures, timeouts, throttling (429) and unavailability (502, 503,
// 504), also of the identity provider, are *[keystore.UnreachableError]
// (504 on /v1/ready, the server's offline cache applies); other answers
// of Key Vault are *[ResponseError]. Connect does not contact Azure, so
// a server starts while Key Vault is down. No token or secret is ever
// logged or part of an error.
//
// # Configuration
//
// The package registers nothing by itself; keystore/all registers
// [NewConfig] as "azure.keyvault":
//
//	keystore:
//	  azure:
//	    keyvault:
//	      endpoint: https://my-vault.vault.azure.net
//	      credentials:                # a service principal, or
//	        tenant_id: <tenant ID>
//	        client_id: <client ID>
//	        client_secret: <secret>
//	      managed_identity:           # a user-assigned managed identity;
//	        client_id: <client ID>    # neither: the default chain
//
// The identity provider is Azure's public cloud, or the one named by the
// standard AZURE_AUTHORITY_HOST variable. See docs/keystores/azure.md.
package azure

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/openkes/openkes/internal/namelock"
	"github.com/openkes/openkes/keystore"
)

// Store is a key store in an Azure Key Vault. It is safe for concurrent
// use.
type Store struct {
	client   *azsecrets.Client
	endpoint string
	timeout  time.Duration
	log      *slog.Logger
	now      func() time.Time

	// confirmDelay is the wait between setting a new secret and checking
	// that no other server set it too (1 s, see Create).
	confirmDelay time.Duration

	creating namelock.Set
}

var _ keystore.Store = (*Store)(nil)

func connect(c *Config, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	timeout := c.opts.timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	backoffMax := c.opts.backoffMax
	if backoffMax <= 0 {
		backoffMax = 10 * time.Second
	}
	client := azcore.ClientOptions{
		// Bounded so that a call with its retries fits its timeout.
		Retry: policy.RetryOptions{
			MaxRetries:    2,
			TryTimeout:    timeout / 2,
			RetryDelay:    200 * time.Millisecond,
			MaxRetryDelay: 800 * time.Millisecond,
		},
		Telemetry: policy.TelemetryOptions{ApplicationID: "openkes"},
	}
	if c.opts.transport != nil {
		client.Transport = &http.Client{Transport: c.opts.transport}
	}
	cred, err := newCredential(c, client)
	if err != nil {
		return nil, fmt.Errorf("azure: %w", err)
	}
	endpoint := strings.TrimRight(c.Endpoint, "/")
	sc, err := azsecrets.NewClient(endpoint, &backoffCredential{cred: cred, log: log, max: backoffMax}, &azsecrets.ClientOptions{ClientOptions: client})
	if err != nil {
		return nil, fmt.Errorf("azure: %w", err)
	}
	return &Store{client: sc, endpoint: endpoint, timeout: timeout, log: log, now: time.Now, confirmDelay: time.Second}, nil
}

// String returns "Azure KeyVault: <endpoint>", the name shown in the
// start-up banner.
func (s *Store) String() string { return "Azure KeyVault: " + s.endpoint }

// call bounds one operation by the store's timeout.
func (s *Store) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// Create stores value under name if no key of that name exists; see the
// package documentation for how. It returns an error wrapping
// [keystore.ErrExists] if one does or a concurrent Create on another
// server won, an error for a name Key Vault cannot hold (longer than 127
// characters once encoded) or a value that is not UTF-8 text (Key Vault
// stores strings; the server only stores text), an error if a secret
// whose name differs only in case is in the way or a soft-deleted secret
// of the name cannot be purged, and otherwise *[ResponseError] or
// *keystore.UnreachableError.
func (s *Store) Create(ctx context.Context, name string, value []byte) error {
	sn, err := secretName(name)
	if err != nil {
		return fmt.Errorf("azure: create %q: %w", name, err)
	}
	if !utf8.Valid(value) {
		return fmt.Errorf("azure: create %q: the value is not valid UTF-8 text", name)
	}
	defer s.creating.Lock(sn)()
	ctx, cancel := s.call(ctx)
	defer cancel()

	resp, err := s.client.GetSecret(ctx, sn, "", nil)
	switch {
	case err == nil && resp.ID != nil && resp.ID.Name() != sn:
		return fmt.Errorf("azure: create %q: the vault holds a secret %q, whose name differs only in case", name, resp.ID.Name())
	case err == nil:
		return fmt.Errorf("azure: create %q: %w", name, keystore.ErrExists)
	case hasInnerCode(err, codeForbiddenByPolicy):
		return fmt.Errorf("azure: create %q: reading the secret is forbidden by the vault's policy: %w", name, translate(ctx, err))
	case !isStatus(err, http.StatusNotFound):
		return fmt.Errorf("azure: create %q: %w", name, translate(ctx, err))
	}
	if ln, ok := legacyName(name); ok {
		exists, err := s.existsExactly(ctx, ln)
		if err != nil {
			return fmt.Errorf("azure: create %q: %w", name, err)
		}
		if exists {
			return fmt.Errorf("azure: create %q: %w", name, keystore.ErrExists)
		}
	}

	version, err := s.set(ctx, sn, string(value))
	if err != nil {
		return fmt.Errorf("azure: create %q: %w", name, err)
	}
	// Another server may have set the secret at the same moment; the
	// oldest version is the key, as Get reads it. Key Vault stamps
	// versions to the second: after a second, every version set later
	// is strictly newer than ours, and every one set in the same second
	// is listed.
	if err := sleep(ctx, s.confirmDelay); err != nil {
		return fmt.Errorf("azure: create %q: %w", name, translate(ctx, err))
	}
	versions, err := s.versions(ctx, sn)
	if err != nil {
		return fmt.Errorf("azure: create %q: checking the versions: %w", name, err)
	}
	if !won(versions, version) {
		s.log.Info("azure: create lost a race with another server", "key", name)
		return fmt.Errorf("azure: create %q: %w", name, keystore.ErrExists)
	}
	return nil
}

// won reports whether the version a Create wrote is the key: no other
// version is older or as old. Key Vault's creation times have a
// resolution of one second, so of versions set in the same second no
// writer can tell which came first; all of them yield, and readers
// pick one of them by version ID. A Create therefore never reports
// success for a version that readers do not use.
func won(versions []*azsecrets.SecretProperties, version string) bool {
	var mine *azsecrets.SecretProperties
	for _, v := range versions {
		if v.ID.Version() == version {
			mine = v
		}
	}
	if mine == nil {
		// Not listed yet: the key is ours only if nothing else is.
		return len(versions) == 0
	}
	for _, v := range versions {
		if v != mine && !created(mine).Before(created(v)) {
			return false
		}
	}
	return true
}

// created returns the creation time of a version.
func created(p *azsecrets.SecretProperties) time.Time {
	if p.Attributes != nil && p.Attributes.Created != nil {
		return *p.Attributes.Created
	}
	return time.Time{}
}

// existsExactly reports whether a secret named exactly secretName (case
// included) exists.
func (s *Store) existsExactly(ctx context.Context, secretName string) (bool, error) {
	resp, err := s.client.GetSecret(ctx, secretName, "", nil)
	switch {
	case err == nil:
		return resp.ID != nil && resp.ID.Name() == secretName, nil
	case isStatus(err, http.StatusNotFound):
		return false, nil
	}
	return false, translate(ctx, err)
}

// set sets the secret, purging a soft-deleted secret of that name first
// if Key Vault says there is one. It returns the new version.
func (s *Store) set(ctx context.Context, sn, value string) (string, error) {
	params := azsecrets.SetSecretParameters{Value: &value}
	purged := false
	for attempt := 0; ; attempt++ {
		resp, err := s.client.SetSecret(ctx, sn, params, nil)
		if err == nil {
			if resp.ID == nil {
				return "", errors.New("the answer has no secret ID")
			}
			return resp.ID.Version(), nil
		}
		softDeleted := hasInnerCode(err, codeDeletedButRecoverable) || hasInnerCode(err, codeBeingDeleted)
		switch {
		case softDeleted && !purged:
			s.log.Info("azure: purging a deleted secret to reuse its name", "secret", sn)
			if err := s.purge(ctx, sn, 25); err != nil {
				return "", err
			}
			purged = true
		case softDeleted && attempt < 8:
			// The purge takes a moment to complete.
			if err := sleep(ctx, backoff(attempt)); err != nil {
				return "", translate(ctx, err)
			}
		default:
			return "", translate(ctx, err)
		}
	}
}

// purge purges the soft-deleted secret sn, trying up to tries times while
// Key Vault reports it is still being deleted. A secret that is not
// (or no longer) soft-deleted counts as purged.
func (s *Store) purge(ctx context.Context, sn string, tries int) error {
	for attempt := 0; ; attempt++ {
		_, err := s.client.PurgeDeletedSecret(ctx, sn, nil)
		switch {
		case err == nil || isStatus(err, http.StatusNotFound):
			return nil
		case isStatus(err, http.StatusForbidden):
			return fmt.Errorf("the vault keeps the deleted secret %q and does not allow purging it "+
				"(purge protection, a policy, or no purge permission); recover it or wait until its retention period has passed: %w", sn, translate(ctx, err))
		case hasInnerCode(err, codeBeingDeleted) && attempt+1 < tries:
			if err := sleep(ctx, backoff(attempt)); err != nil {
				return translate(ctx, err)
			}
		default:
			return translate(ctx, err)
		}
	}
}

// backoff returns the wait before retry attempt+1 of a purge: 200 ms,
// growing to 1 s.
func backoff(attempt int) time.Duration {
	return min(time.Second, 200*time.Millisecond*time.Duration(attempt+1))
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// versions returns the versions of the secret sn, oldest first (by
// creation time, then version ID, so that all servers agree), following
// every page. A missing secret has none.
func (s *Store) versions(ctx context.Context, sn string) ([]*azsecrets.SecretProperties, error) {
	var out []*azsecrets.SecretProperties
	pager := s.client.NewListSecretPropertiesVersionsPager(sn, nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if isStatus(err, http.StatusNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, translate(ctx, err)
		}
		for _, v := range page.Value {
			if v != nil && v.ID != nil {
				out = append(out, v)
			}
		}
	}
	slices.SortStableFunc(out, func(a, b *azsecrets.SecretProperties) int {
		if c := created(a).Compare(created(b)); c != 0 {
			return c
		}
		return cmp.Compare(a.ID.Version(), b.ID.Version())
	})
	return out, nil
}

// read returns the value of the oldest version of the secret sn. If
// exact is set, a secret whose name is not exactly exact counts as
// missing.
func (s *Store) read(ctx context.Context, sn string, exact bool) (string, error) {
	versions, err := s.versions(ctx, sn)
	if err != nil {
		return "", err
	}
	if len(versions) == 0 || (exact && versions[0].ID.Name() != sn) {
		return "", keystore.ErrNotFound
	}
	oldest := versions[0]
	resp, err := s.client.GetSecret(ctx, sn, oldest.ID.Version(), nil)
	switch {
	case isStatus(err, http.StatusNotFound):
		return "", keystore.ErrNotFound
	case err != nil:
		return "", translate(ctx, err)
	case resp.Value == nil:
		return "", errors.New("the secret has no value")
	}
	if a := resp.Attributes; a != nil {
		now := s.now()
		switch {
		case a.Enabled != nil && !*a.Enabled:
			return "", errors.New("the secret's oldest version is disabled")
		case a.NotBefore != nil && now.Before(*a.NotBefore):
			return "", errors.New("the secret's oldest version is not valid yet")
		case a.Expires != nil && !now.Before(*a.Expires):
			return "", errors.New("the secret's oldest version has expired")
		}
	}
	return *resp.Value, nil
}

// Get returns the value of the oldest version of the key's secret. It
// returns an error wrapping [keystore.ErrNotFound] if there is no such
// secret, an error for a disabled, not yet valid or expired version, and
// otherwise *[ResponseError] or *keystore.UnreachableError.
func (s *Store) Get(ctx context.Context, name string) ([]byte, error) {
	sn, err := secretName(name)
	if err != nil {
		return nil, fmt.Errorf("azure: get %q: %w", name, err)
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	v, err := s.read(ctx, sn, false)
	if errors.Is(err, keystore.ErrNotFound) {
		if ln, ok := legacyName(name); ok {
			v, err = s.read(ctx, ln, true)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("azure: get %q: %w", name, err)
	}
	return []byte(v), nil
}

// Delete deletes and purges the key's secret (see the package
// documentation). It returns an error wrapping [keystore.ErrNotFound] if
// there is no such secret, and otherwise *[ResponseError] or
// *keystore.UnreachableError. A failed purge is logged, not returned.
func (s *Store) Delete(ctx context.Context, name string) error {
	sn, err := secretName(name)
	if err != nil {
		return fmt.Errorf("azure: delete %q: %w", name, err)
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	_, err = s.client.DeleteSecret(ctx, sn, nil)
	if isStatus(err, http.StatusNotFound) {
		ln, ok := legacyName(name)
		if !ok {
			return fmt.Errorf("azure: delete %q: %w", name, keystore.ErrNotFound)
		}
		exists, err2 := s.existsExactly(ctx, ln)
		switch {
		case err2 != nil:
			return fmt.Errorf("azure: delete %q: %w", name, err2)
		case !exists:
			return fmt.Errorf("azure: delete %q: %w", name, keystore.ErrNotFound)
		}
		sn = ln
		_, err = s.client.DeleteSecret(ctx, sn, nil)
	}
	if err != nil {
		return fmt.Errorf("azure: delete %q: %w", name, translate(ctx, err))
	}
	if err := s.purge(ctx, sn, 10); err != nil && !hasInnerCode(err, codeBeingDeleted) {
		s.log.Warn("azure: the key is deleted, but its secret could not be purged; it stays soft-deleted until its retention period has passed",
			"key", name, "error", err.Error())
	}
	return nil
}

// List returns the names of the keys that start with prefix, paged as
// described at [keystore.Store.List]: the names of all secrets of the
// vault (encoded names decoded), as the original lists them. Errors are
// *[ResponseError] or *keystore.UnreachableError.
func (s *Store) List(ctx context.Context, prefix string, n int) ([]string, string, error) {
	ctx, cancel := s.call(ctx)
	defer cancel()
	var names []string
	seen := map[string]bool{}
	pager := s.client.NewListSecretPropertiesPager(nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, "", fmt.Errorf("azure: list: %w", translate(ctx, err))
		}
		for _, p := range page.Value {
			if p == nil || p.ID == nil {
				continue
			}
			name, ok := keyName(p.ID.Name())
			if !ok || !strings.HasPrefix(name, prefix) || seen[name] {
				continue
			}
			seen[name] = true
			names = append(names, name)
		}
	}
	page, next := keystore.Page(names, prefix, n)
	return page, next, nil
}

// Status lists one page of secrets, which needs a valid login and the
// list permission, and returns its latency. An unreachable vault or
// identity provider is *keystore.UnreachableError; other failures are
// *[ResponseError] or a login error.
func (s *Store) Status(ctx context.Context) (keystore.State, error) {
	ctx, cancel := s.call(ctx)
	defer cancel()
	start := time.Now()
	pager := s.client.NewListSecretPropertiesPager(nil)
	if _, err := pager.NextPage(ctx); err != nil {
		return keystore.State{}, fmt.Errorf("azure: status: %w", translate(ctx, err))
	}
	return keystore.State{Latency: time.Since(start)}, nil
}

// Close releases nothing: the store has no background work.
func (s *Store) Close() error { return nil }
