// Package entrust is the key store on Entrust KeyControl (secrets vault),
// the "keystore.entrust.keycontrol" section of the config file. It speaks
// the KeyControl vault REST API (vault/1.0) with net/http.
//
// # Storage layout
//
// Each key is a secret in the configured box whose name (and secret ID)
// is the key name and whose secret_data is the base64 of the stored key:
// the layout of the original KES server, so OpenKES reads the keys the
// original created and vice versa.
//
// # Credentials
//
// The store logs in to the vault with the configured user name and
// password and sends the access token as X-Vault-Auth. It renews the
// token after half of its remaining lifetime, in the background, while
// the old one stays in use, and logs in again if renewal fails; failed
// logins are retried with exponential backoff. Neither the password nor
// a token is ever logged or part of an error. See
// docs/keystores/entrust.md.
package entrust

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/openkes/openkes/internal/restclient"
	"github.com/openkes/openkes/keystore"
)

// Kind is the config section of this key store.
const Kind = "entrust.keycontrol"

// NewConfig returns an empty Config, for keystore.Register (see
// keystore/all).
func NewConfig() keystore.Config { return new(Config) }

// Config is the "keystore.entrust.keycontrol" section, with the schema of
// the original KES server.
type Config struct {
	// Endpoint is the base URL of KeyControl, e.g.
	// https://keycontrol.example.net.
	Endpoint string `yaml:"endpoint"`

	// VaultID is the ID of the secrets vault to log in to.
	VaultID string `yaml:"vault_id"`

	// BoxID is the box (in that vault) that holds the keys.
	BoxID string `yaml:"box_id"`

	Credentials struct {
		Username string          `yaml:"username"`
		Password keystore.Secret `yaml:"password"`
	} `yaml:"credentials"`

	TLS restclient.TLS `yaml:"tls"`
}

var _ keystore.Config = (*Config)(nil)

const invalid = "kesconf: invalid Entrust KeyControl keystore: "

// Validate returns every problem of c, joined, each naming its field
// relative to the section, followed by the original's message.
func (c *Config) Validate() error {
	var errs []error
	req := func(field, value, what string) {
		if strings.TrimSpace(value) == "" {
			errs = append(errs, fmt.Errorf("%s: required (%sno %s specified)", field, invalid, what))
		}
	}
	req("endpoint", c.Endpoint, "endpoint")
	req("vault_id", c.VaultID, "vault ID")
	req("box_id", c.BoxID, "box ID")
	req("credentials.username", c.Credentials.Username, "username")
	req("credentials.password", c.Credentials.Password.Reveal(), "password")
	return errors.Join(errs...)
}

// Connect returns a [*Store]. It does not wait for KeyControl: the store
// logs in in the background, and operations fail with an error wrapping
// *keystore.UnreachableError until KeyControl answers. Connect fails for
// an invalid configuration, an endpoint that is not an http(s) URL, and
// CA files that cannot be loaded. log receives login and renewal
// records; nil discards them.
func (c *Config) Connect(ctx context.Context, log *slog.Logger) (keystore.Store, error) {
	base, client, err := restclient.Open(ctx, "entrust", c, c.Endpoint, c.TLS.CA)
	if err != nil {
		return nil, err
	}
	s := &Store{base: base, http: client, conf: *c}
	s.session = restclient.NewSession(restclient.SessionConfig{Name: "entrust", Login: s.login, Renew: s.renew, Log: log})
	return s, nil
}

// Store is a KeyControl key store. It is safe for concurrent use.
type Store struct {
	base    string
	http    *http.Client
	conf    Config
	session *restclient.Session
}

var _ keystore.Store = (*Store)(nil)

// String returns the start-up banner's description.
func (s *Store) String() string { return "Entrust KeyControl: " + s.base }

// GoString is String.
func (s *Store) GoString() string { return s.String() }

// ResponseError is an error answer of KeyControl. Its Message is the
// "error" of the JSON body, or the plain-text body.
type ResponseError = restclient.ResponseError

// defaultLifetime is assumed for a token without expires_at, as by the
// original.
const defaultLifetime = 5 * time.Minute

// decodeToken reads {"access_token","expires_at"}.
func decodeToken(body []byte, now time.Time) (restclient.Token, error) {
	var auth struct {
		Token     string `json:"access_token"`
		ExpiresAt string `json:"expires_at"`
	}
	if err := json.Unmarshal(body, &auth); err != nil {
		return restclient.Token{}, errors.New("invalid response body")
	}
	if auth.Token == "" {
		return restclient.Token{}, errors.New("no access token in the response")
	}
	expiry := now.Add(defaultLifetime)
	if auth.ExpiresAt != "" {
		t, err := time.Parse(time.RFC3339Nano, auth.ExpiresAt)
		if err != nil {
			return restclient.Token{}, fmt.Errorf("invalid expires_at '%.40s'", auth.ExpiresAt)
		}
		expiry = t
	}
	return restclient.Token{Value: auth.Token, Expiry: expiry}, nil
}

// login logs in with the user name and password.
func (s *Store) login(ctx context.Context) (restclient.Token, error) {
	body := map[string]string{"username": s.conf.Credentials.Username, "password": s.conf.Credentials.Password.Reveal()}
	defer clear(body)
	return s.token(ctx, "login", &restclient.Request{
		Method: http.MethodPost,
		URL:    s.base + "/vault/1.0/Login/" + url.PathEscape(s.conf.VaultID) + "/",
		Body:   body,
	})
}

// renew exchanges old for a token with a new lifetime.
func (s *Store) renew(ctx context.Context, old restclient.Token) (restclient.Token, error) {
	return s.token(ctx, "renew", &restclient.Request{
		Method: http.MethodPost,
		URL:    s.base + "/vault/1.0/Renew/",
		Body:   struct{}{},
		Header: http.Header{"X-Vault-Auth": {old.Value}},
	})
}

// token sends req, a login or a renewal, and decodes the token of the
// answer; errors start with what.
func (s *Store) token(ctx context.Context, what string, req *restclient.Request) (restclient.Token, error) {
	now := time.Now()
	resp, err := restclient.Do(ctx, s.http, req)
	if err := restclient.Check(resp, err, restclient.OK, "error"); err != nil {
		return restclient.Token{}, fmt.Errorf("%s: %w", what, err)
	}
	tok, err := decodeToken(resp.Body, now)
	if err != nil {
		return restclient.Token{}, fmt.Errorf("%s: %w", what, err)
	}
	return tok, nil
}

// do sends an authenticated POST. If KeyControl rejects the token (it
// expired early or was revoked), it logs in again and repeats the
// request once.
func (s *Store) do(ctx context.Context, op string, body any) (*restclient.Response, error) {
	return s.session.Do(ctx, s.http, func(tok restclient.Token) *restclient.Request {
		return &restclient.Request{
			Method: http.MethodPost,
			URL:    s.base + "/vault/1.0/" + op + "/",
			Body:   body,
			Header: http.Header{"X-Vault-Auth": {tok.Value}},
		}
	})
}

// Create stores value as the secret name.
func (s *Store) Create(ctx context.Context, name string, value []byte) error {
	body := map[string]string{"box_id": s.conf.BoxID, "name": name, "secret_data": base64.StdEncoding.EncodeToString(value)}
	resp, err := s.do(ctx, "CreateSecret", body)
	if err := restclient.Check(resp, err, restclient.Created, "error"); err != nil {
		return fmt.Errorf("entrust: create %q: %w", name, err)
	}
	return nil
}

// Get checks the secret out and decodes it.
func (s *Store) Get(ctx context.Context, name string) ([]byte, error) {
	resp, err := s.do(ctx, "CheckoutSecret", map[string]string{"box_id": s.conf.BoxID, "secret_id": name})
	if err := restclient.Check(resp, err, restclient.Found, "error"); err != nil {
		return nil, fmt.Errorf("entrust: get %q: %w", name, err)
	}
	var secret struct {
		Data *string `json:"secret_data"`
	}
	err = json.Unmarshal(resp.Body, &secret)
	clear(resp.Body)
	if err != nil || secret.Data == nil {
		return nil, fmt.Errorf("entrust: get %q: invalid response body", name)
	}
	v, err := base64.StdEncoding.DecodeString(*secret.Data)
	if err != nil {
		return nil, fmt.Errorf("entrust: get %q: the secret data is not base64", name)
	}
	return v, nil
}

// Delete removes the secret name.
func (s *Store) Delete(ctx context.Context, name string) error {
	resp, err := s.do(ctx, "DeleteSecret", map[string]string{"box_id": s.conf.BoxID, "secret_id": name})
	if err := restclient.Check(resp, err, restclient.Deleted, "error"); err != nil {
		return fmt.Errorf("entrust: delete %q: %w", name, err)
	}
	return nil
}

// maxItems is the page size asked for; KeyControl may return fewer.
const maxItems = 256

// maxPages bounds a listing, against a service that never ends it.
const maxPages = 1 << 16

// List reads every page of secret IDs, skipping expired secrets, and
// pages the names with keystore.Page. (The original returned as many
// empty names as there were secrets before the real ones.)
func (s *Store) List(ctx context.Context, prefix string, n int) ([]string, string, error) {
	var names []string
	token := ""
	for pages := 0; ; pages++ {
		if pages == maxPages {
			return nil, "", errors.New("entrust: list: too many pages")
		}
		body := map[string]any{"box_id": s.conf.BoxID, "max_items": maxItems}
		if token != "" {
			body["next_token"] = token
		}
		resp, err := s.do(ctx, "ListSecretIds", body)
		if err := restclient.Check(resp, err, restclient.OK, "error"); err != nil {
			return nil, "", fmt.Errorf("entrust: list: %w", err)
		}
		page, next, err := decodeList(resp.Body, time.Now())
		if err != nil {
			return nil, "", fmt.Errorf("entrust: list: %w", err)
		}
		names = append(names, page...)
		if next == "" || next == token {
			break
		}
		token = next
	}
	page, next := keystore.Page(names, prefix, n)
	return page, next, nil
}

// decodeList reads a ListSecretIds answer: the names of the secrets that
// have not expired at now, and the continuation token.
func decodeList(body []byte, now time.Time) (names []string, next string, err error) {
	var list struct {
		Secrets []struct {
			ID        string `json:"secret_id"`
			Name      string `json:"name"`
			ExpiresAt string `json:"expires_at"`
		} `json:"secrets"`
		NextToken string `json:"next_token"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, "", errors.New("invalid response body")
	}
	for _, sec := range list.Secrets {
		if sec.ExpiresAt != "" {
			if t, err := time.Parse(time.RFC3339Nano, sec.ExpiresAt); err == nil && !now.Before(t) {
				continue
			}
		}
		name := sec.ID
		if name == "" {
			name = sec.Name
		}
		if name != "" {
			names = append(names, name)
		}
	}
	return names, list.NextToken, nil
}

// Status asks for the box, which needs a valid token.
func (s *Store) Status(ctx context.Context) (keystore.State, error) {
	start := time.Now()
	resp, err := s.do(ctx, "GetBox", map[string]string{"box_id": s.conf.BoxID})
	if err := restclient.Check(resp, err, restclient.OK, "error"); err != nil {
		return keystore.State{}, fmt.Errorf("entrust: status: %w", err)
	}
	return keystore.State{Latency: time.Since(start)}, nil
}

// Close stops the background login and renewal.
func (s *Store) Close() error {
	s.session.Close()
	s.http.CloseIdleConnections()
	return nil
}
