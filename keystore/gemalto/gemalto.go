// Package gemalto is the key store on Gemalto KeySecure / Thales
// CipherTrust Manager, the "keystore.gemalto.keysecure" section of the
// config file. It speaks the CipherTrust REST API (api/v1) with net/http.
//
// # Storage layout
//
// Each key is a CipherTrust secret of data type "seed" whose name is the
// key name and whose material is the stored value as it is, as the
// original KES server writes it, so OpenKES reads the keys the original
// created and vice versa.
//
// # Credentials
//
// The configured refresh token (credentials.token, of the optional
// credentials.domain) is exchanged at api/v1/auth/tokens for a short-lived
// JWT, which the store replaces after half of its lifetime, in the
// background, while the old one stays in use. Failed logins are retried
// with exponential backoff. Neither token is ever logged or part of an
// error. See docs/keystores/gemalto.md.
package gemalto

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/openkes/openkes/internal/restclient"
	"github.com/openkes/openkes/keystore"
)

// Kind is the config section of this key store.
const Kind = "gemalto.keysecure"

// NewConfig returns an empty Config, for keystore.Register (see
// keystore/all).
func NewConfig() keystore.Config { return new(Config) }

// Config is the "keystore.gemalto.keysecure" section, with the schema of
// the original KES server.
type Config struct {
	// Endpoint is the base URL of the KeySecure / CipherTrust Manager,
	// e.g. https://keysecure.example.net.
	Endpoint string `yaml:"endpoint"`

	Credentials Credentials `yaml:"credentials"`

	TLS restclient.TLS `yaml:"tls"`
}

// Credentials is the "credentials" subsection.
type Credentials struct {
	// Token is the refresh token.
	Token keystore.Secret `yaml:"token"`
	// Domain is the CipherTrust domain of the token's user; empty is the
	// root domain.
	Domain string `yaml:"domain"`
	// Retry is accepted for compatibility with the original's sample
	// config and ignored (as there): failed logins back off
	// exponentially.
	Retry yaml.Node `yaml:"retry"`
}

var _ keystore.Config = (*Config)(nil)

const invalid = "kesconf: invalid gemalto keysecure keystore: "

// Validate returns every problem of c, joined, each naming its field
// relative to the section, followed by the original's message.
func (c *Config) Validate() error {
	var errs []error
	if isBlank(c.Endpoint) {
		errs = append(errs, errors.New("endpoint: required ("+invalid+"no endpoint specified)"))
	}
	if isBlank(c.Credentials.Token.Reveal()) {
		errs = append(errs, errors.New("credentials.token: required ("+invalid+"no token specified)"))
	}
	return errors.Join(errs...)
}

func isBlank(s string) bool {
	for _, r := range s {
		if r != ' ' && r != '\t' && r != '\n' && r != '\r' {
			return false
		}
	}
	return true
}

// Connect returns a [*Store]. It does not wait for the service: the store
// logs in in the background, and operations fail with an error wrapping
// *keystore.UnreachableError until the service answers. Connect fails for
// an invalid configuration, an endpoint that is not an http(s) URL, and
// CA files that cannot be loaded. log receives login records; nil
// discards them.
func (c *Config) Connect(ctx context.Context, log *slog.Logger) (keystore.Store, error) {
	base, client, err := restclient.Open(ctx, "gemalto", c, c.Endpoint, c.TLS.CA)
	if err != nil {
		return nil, err
	}
	s := &Store{base: base, http: client, conf: *c}
	s.session = restclient.NewSession(restclient.SessionConfig{Name: "gemalto", Login: s.login, Log: log})
	return s, nil
}

// Store is a KeySecure / CipherTrust key store. It is safe for
// concurrent use.
type Store struct {
	base    string
	http    *http.Client
	conf    Config
	session *restclient.Session
}

var _ keystore.Store = (*Store)(nil)

// String returns the start-up banner's description.
func (s *Store) String() string { return "Gemalto KeySecure: " + s.base }

// GoString is String.
func (s *Store) GoString() string { return s.String() }

// login exchanges the refresh token for a JWT.
func (s *Store) login(ctx context.Context) (restclient.Token, error) {
	body := map[string]string{
		"grant_type":    "refresh_token",
		"refresh_token": s.conf.Credentials.Token.Reveal(),
		"domain":        s.conf.Credentials.Domain,
	}
	start := time.Now()
	resp, err := restclient.Do(ctx, s.http, &restclient.Request{Method: http.MethodPost, URL: s.base + "/api/v1/auth/tokens", Body: body})
	clear(body)
	if err := restclient.Check(resp, err, restclient.OK, "codeDesc"); err != nil {
		return restclient.Token{}, fmt.Errorf("login: %w", err)
	}
	var auth struct {
		Type     string `json:"token_type"`
		JWT      string `json:"jwt"`
		Duration int64  `json:"duration"`
	}
	if err := json.Unmarshal(resp.Body, &auth); err != nil {
		return restclient.Token{}, errors.New("login: invalid response body")
	}
	switch {
	case auth.Type != "Bearer":
		return restclient.Token{}, fmt.Errorf("login: unsupported token type '%s'", auth.Type)
	case auth.JWT == "":
		return restclient.Token{}, errors.New("login: no token in the response")
	case auth.Duration <= 0:
		return restclient.Token{}, fmt.Errorf("login: invalid token duration %d", auth.Duration)
	}
	return restclient.Token{Value: auth.JWT, Expiry: start.Add(time.Duration(auth.Duration) * time.Second)}, nil
}

// ResponseError is an error answer of the service. Its Message is the
// codeDesc of the JSON body, or the plain-text body.
type ResponseError = restclient.ResponseError

// do sends an authenticated request. If the service rejects the JWT (it
// expired early or was revoked), it logs in again and repeats the
// request once.
func (s *Store) do(ctx context.Context, method, path string, body any) (*restclient.Response, error) {
	return s.session.Do(ctx, s.http, func(tok restclient.Token) *restclient.Request {
		return &restclient.Request{
			Method: method,
			URL:    s.base + path,
			Body:   body,
			Header: http.Header{"Authorization": {"Bearer " + tok.Value}},
		}
	})
}

// Create stores value as a "seed" secret named name.
// The material is a JSON string, so value must be UTF-8; the server only
// stores text.
func (s *Store) Create(ctx context.Context, name string, value []byte) error {
	if !utf8.Valid(value) {
		return fmt.Errorf("gemalto: create %q: the value is not UTF-8 text", name)
	}
	body := map[string]string{"dataType": "seed", "material": string(value), "name": name}
	resp, err := s.do(ctx, http.MethodPost, "/api/v1/vault/secrets", body)
	if err := restclient.Check(resp, err, restclient.Created, "codeDesc"); err != nil {
		return fmt.Errorf("gemalto: create %q: %w", name, err)
	}
	return nil
}

// Get exports the secret named name.
func (s *Store) Get(ctx context.Context, name string) ([]byte, error) {
	resp, err := s.do(ctx, http.MethodPost, "/api/v1/vault/secrets/"+url.PathEscape(name)+"/export?type=name", nil)
	if err := restclient.Check(resp, err, restclient.Found, "codeDesc"); err != nil {
		return nil, fmt.Errorf("gemalto: get %q: %w", name, err)
	}
	var secret struct {
		Material *string `json:"material"`
	}
	err = json.Unmarshal(resp.Body, &secret)
	clear(resp.Body)
	if err != nil || secret.Material == nil {
		return nil, fmt.Errorf("gemalto: get %q: invalid response body", name)
	}
	return []byte(*secret.Material), nil
}

// Delete removes the secret named name. The service cannot be asked
// whether a delete removed anything without a race, so a missing secret
// (404) is success, as for the original.
func (s *Store) Delete(ctx context.Context, name string) error {
	resp, err := s.do(ctx, http.MethodDelete, "/api/v1/vault/secrets/"+url.PathEscape(name)+"?type=name", nil)
	if err := restclient.Check(resp, err, deleted, "codeDesc"); err != nil {
		return fmt.Errorf("gemalto: delete %q: %w", name, err)
	}
	return nil
}

// deleted: a missing secret is no error (see Delete).
var deleted = restclient.Outcomes{http.StatusOK: nil, http.StatusNoContent: nil, http.StatusNotFound: nil}

// pageLimit is the page size asked for; the service may return fewer.
const pageLimit = 200

// List reads all secret names page by page (the service does not sort
// or filter by prefix) and pages the result with keystore.Page.
func (s *Store) List(ctx context.Context, prefix string, n int) ([]string, string, error) {
	var names []string
	for skip := 0; ; {
		resp, err := s.do(ctx, http.MethodGet, "/api/v1/vault/secrets?limit="+strconv.Itoa(pageLimit)+"&skip="+strconv.Itoa(skip), nil)
		if err := restclient.Check(resp, err, restclient.OK, "codeDesc"); err != nil {
			return nil, "", fmt.Errorf("gemalto: list: %w", err)
		}
		var page struct {
			Skip      int `json:"skip"`
			Total     int `json:"total"`
			Resources []struct {
				Name string `json:"name"`
			} `json:"resources"`
		}
		if err := json.Unmarshal(resp.Body, &page); err != nil {
			return nil, "", errors.New("gemalto: list: invalid response body")
		}
		if page.Skip != skip {
			return nil, "", fmt.Errorf("gemalto: list: asked for the page at %d, got %d", skip, page.Skip)
		}
		for _, r := range page.Resources {
			names = append(names, r.Name)
		}
		skip += len(page.Resources)
		if len(page.Resources) == 0 || skip >= page.Total {
			break
		}
	}
	page, next := keystore.Page(names, prefix, n)
	return page, next, nil
}

// Status sends a GET to the endpoint, which needs no authentication; any
// answer but an overloaded one means the service is up.
func (s *Store) Status(ctx context.Context) (keystore.State, error) {
	start := time.Now()
	if _, err := restclient.Do(ctx, s.http, &restclient.Request{Method: http.MethodGet, URL: s.base + "/"}); err != nil {
		return keystore.State{}, fmt.Errorf("gemalto: status: %w", err)
	}
	latency := time.Since(start)
	s.session.Reachable()
	return keystore.State{Latency: latency}, nil
}

// Close stops the background login.
func (s *Store) Close() error {
	s.session.Close()
	s.http.CloseIdleConnections()
	return nil
}
