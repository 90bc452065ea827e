// Package fortanix is the key store on Fortanix DSM (formerly SDKMS), the
// "keystore.fortanix.sdkms" section of the config file. It speaks the
// DSM REST API with net/http.
//
// # Storage layout
//
// Each key is an OPAQUE security object named like the key, whose value
// is the base64 of the stored key, with the key operations EXPORT and
// APPMANAGEABLE, in the configured group: the layout of the original KES
// server, so OpenKES reads the keys the original created and vice versa.
//
// # Credentials
//
// The API key (credentials.key) authenticates every request as
// "Authorization: Basic <key>", as for the original. An API key does not
// expire, so there is no token to refresh. After Connect, the store
// checks the key once in the background by opening and closing a session
// and logs whether DSM accepted it. The key is never logged or part of an
// error. See docs/keystores/fortanix.md.
package fortanix

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
	"sync"
	"time"

	"github.com/openkes/openkes/internal/restclient"
	"github.com/openkes/openkes/keystore"
)

// Kind is the config section of this key store.
const Kind = "fortanix.sdkms"

// NewConfig returns an empty Config, for keystore.Register (see
// keystore/all).
func NewConfig() keystore.Config { return new(Config) }

// Config is the "keystore.fortanix.sdkms" section, with the schema of the
// original KES server.
type Config struct {
	// Endpoint is the base URL of DSM, e.g. https://sdkms.fortanix.com.
	Endpoint string `yaml:"endpoint"`

	// GroupID is the group new keys are created in; empty means the
	// default group of the API key's app.
	GroupID string `yaml:"group_id"`

	Credentials struct {
		// Key is the app's API key.
		Key keystore.Secret `yaml:"key"`
	} `yaml:"credentials"`

	TLS restclient.TLS `yaml:"tls"`
}

var _ keystore.Config = (*Config)(nil)

const invalid = "kesconf: invalid fortanix SDKMS keystore: "

// Validate returns every problem of c, joined, each naming its field
// relative to the section, followed by the original's message.
func (c *Config) Validate() error {
	var errs []error
	if strings.TrimSpace(c.Endpoint) == "" {
		errs = append(errs, errors.New("endpoint: required ("+invalid+"no endpoint specified)"))
	}
	if strings.TrimSpace(c.Credentials.Key.Reveal()) == "" {
		errs = append(errs, errors.New("credentials.key: required ("+invalid+"no API key specified)"))
	}
	return errors.Join(errs...)
}

// Connect returns a [*Store]. It does not contact DSM, so it succeeds
// while DSM is down; operations then fail with an error wrapping
// *keystore.UnreachableError until DSM answers. Connect fails for an
// invalid configuration, an endpoint that is not an http(s) URL, and CA
// files that cannot be loaded. log receives the result of the background
// API key check; nil discards it.
func (c *Config) Connect(ctx context.Context, log *slog.Logger) (keystore.Store, error) {
	base, client, err := restclient.Open(ctx, "fortanix", c, c.Endpoint, c.TLS.CA)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Store{base: base, http: client, conf: *c, log: log}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(1)
	go s.checkKey()
	return s, nil
}

// Store is a Fortanix DSM key store. It is safe for concurrent use.
type Store struct {
	base string
	http *http.Client
	conf Config
	log  *slog.Logger

	ctx    context.Context // canceled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

var _ keystore.Store = (*Store)(nil)

// String returns the start-up banner's description.
func (s *Store) String() string { return "Fortanix SDKMS: " + s.base }

// GoString is String.
func (s *Store) GoString() string { return s.String() }

// ResponseError is an error answer of DSM. Its Message is the plain-text
// body or its JSON "message".
type ResponseError = restclient.ResponseError

func responseError(resp *restclient.Response) *ResponseError {
	return restclient.NewResponseError(resp, "message")
}

func (s *Store) do(ctx context.Context, method, path string, body any) (*restclient.Response, error) {
	return restclient.Do(ctx, s.http, &restclient.Request{
		Method: method,
		URL:    s.base + path,
		Body:   body,
		Header: http.Header{"Authorization": {"Basic " + s.conf.Credentials.Key.Reveal()}},
	})
}

// checkKey opens and closes a session once, retrying while DSM is
// unreachable, to tell the operator early whether the API key works.
func (s *Store) checkKey() {
	defer s.wg.Done()
	for wait := time.Second; ; wait = min(2*wait, time.Minute) {
		err := s.session(s.ctx)
		switch {
		case s.ctx.Err() != nil:
			return
		case err == nil:
			s.log.Info("fortanix: API key accepted", "endpoint", s.base)
			return
		case !keystore.IsUnreachable(err):
			s.log.Error("fortanix: API key check failed", "endpoint", s.base, "error", err)
			return
		}
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// session authenticates a session with the API key and terminates it.
func (s *Store) session(ctx context.Context) error {
	resp, err := s.do(ctx, http.MethodPost, "/sys/v1/session/auth", nil)
	if err != nil {
		return err
	}
	if resp.Status != http.StatusOK {
		return fmt.Errorf("session auth: %w", responseError(resp))
	}
	var auth struct {
		Token string `json:"access_token"`
	}
	if err := json.Unmarshal(resp.Body, &auth); err != nil || auth.Token == "" {
		return errors.New("session auth: no access token in the response")
	}
	resp, err = restclient.Do(ctx, s.http, &restclient.Request{
		Method: http.MethodPost,
		URL:    s.base + "/sys/v1/session/terminate",
		Header: http.Header{"Authorization": {"Bearer " + auth.Token}},
	})
	if err != nil {
		return err
	}
	if resp.Status != http.StatusNoContent {
		return fmt.Errorf("session terminate: %w", responseError(resp))
	}
	return nil
}

// Create stores value as an exportable OPAQUE object named name.
func (s *Store) Create(ctx context.Context, name string, value []byte) error {
	body := map[string]any{
		"obj_type": "OPAQUE",
		"name":     name,
		"key_ops":  []string{"EXPORT", "APPMANAGEABLE"},
		"value":    base64.StdEncoding.EncodeToString(value),
		"enabled":  true,
	}
	if s.conf.GroupID != "" {
		body["group_id"] = s.conf.GroupID
	}
	resp, err := s.do(ctx, http.MethodPut, "/crypto/v1/keys", body)
	if err := restclient.Check(resp, err, restclient.Created, "message"); err != nil {
		return fmt.Errorf("fortanix: create %q: %w", name, err)
	}
	return nil
}

// sobject is the part of a security object the store reads.
type sobject struct {
	KID     string  `json:"kid"`
	Name    string  `json:"name"`
	Value   *string `json:"value"`
	Enabled *bool   `json:"enabled"`
}

// export returns the object named name with its value.
func (s *Store) export(ctx context.Context, name string) (*sobject, error) {
	resp, err := s.do(ctx, http.MethodPost, "/crypto/v1/keys/export", map[string]string{"name": name})
	if err := restclient.Check(resp, err, restclient.Found, "message"); err != nil {
		return nil, err
	}
	var obj sobject
	err = json.Unmarshal(resp.Body, &obj)
	clear(resp.Body)
	if err != nil {
		return nil, errors.New("invalid response body")
	}
	return &obj, nil
}

// Get exports the object named name and decodes its value.
func (s *Store) Get(ctx context.Context, name string) ([]byte, error) {
	obj, err := s.export(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("fortanix: get %q: %w", name, err)
	}
	if obj.Enabled != nil && !*obj.Enabled {
		return nil, fmt.Errorf("fortanix: get %q: the security object is disabled", name)
	}
	if obj.Value == nil {
		return nil, fmt.Errorf("fortanix: get %q: no value in the response", name)
	}
	v, err := base64.StdEncoding.DecodeString(*obj.Value)
	if err != nil {
		return nil, fmt.Errorf("fortanix: get %q: the value is not base64", name)
	}
	return v, nil
}

// Delete looks up the object's kid and deletes it.
func (s *Store) Delete(ctx context.Context, name string) error {
	obj, err := s.export(ctx, name)
	if err != nil {
		return fmt.Errorf("fortanix: delete %q: %w", name, err)
	}
	if obj.KID == "" {
		return fmt.Errorf("fortanix: delete %q: no kid in the response", name)
	}
	resp, err := s.do(ctx, http.MethodDelete, "/crypto/v1/keys/"+url.PathEscape(obj.KID), nil)
	if err := restclient.Check(resp, err, restclient.Deleted, "message"); err != nil {
		return fmt.Errorf("fortanix: delete %q: %w", name, err)
	}
	return nil
}

// pageLimit is the page size asked for; DSM may return fewer.
const pageLimit = 100

// List pages through the objects sorted by name, starting at prefix.
// Each next page starts at the last name seen; names up to it are
// skipped, so a service whose start is inclusive and one whose start is
// exclusive are both read correctly. (The original never advanced its
// start and looped forever.)
func (s *Store) List(ctx context.Context, prefix string, n int) ([]string, string, error) {
	var (
		names []string
		last  string
		seen  bool
		start = prefix
	)
	for {
		q := url.Values{"sort": {"name:asc"}, "limit": {fmt.Sprint(pageLimit)}}
		if start != "" {
			q.Set("start", start)
		}
		if s.conf.GroupID != "" {
			q.Set("group_id", s.conf.GroupID)
		}
		resp, err := s.do(ctx, http.MethodGet, "/crypto/v1/keys?"+q.Encode(), nil)
		if err := restclient.Check(resp, err, restclient.OK, "message"); err != nil {
			return nil, "", fmt.Errorf("fortanix: list: %w", err)
		}
		var page []sobject
		if err := json.Unmarshal(resp.Body, &page); err != nil {
			return nil, "", errors.New("fortanix: list: invalid response body")
		}
		advanced := false
		for _, obj := range page {
			if seen && obj.Name <= last {
				continue
			}
			if obj.Name < last {
				return nil, "", errors.New("fortanix: list: the service returned names out of order")
			}
			last, seen, advanced = obj.Name, true, true
			if !strings.HasPrefix(obj.Name, prefix) {
				if obj.Name > prefix {
					return finish(names)
				}
				continue
			}
			names = append(names, obj.Name)
			if n > 0 && len(names) > n {
				return names[:n:n], names[n], nil
			}
		}
		if !advanced {
			return finish(names)
		}
		start = last
	}
}

func finish(names []string) ([]string, string, error) {
	if names == nil {
		names = []string{}
	}
	return names, "", nil
}

// Status calls the health endpoint, which needs no authentication.
func (s *Store) Status(ctx context.Context) (keystore.State, error) {
	start := time.Now()
	resp, err := restclient.Do(ctx, s.http, &restclient.Request{Method: http.MethodGet, URL: s.base + "/sys/v1/health"})
	if err != nil {
		return keystore.State{}, fmt.Errorf("fortanix: status: %w", err)
	}
	if resp.Status != http.StatusNoContent && resp.Status != http.StatusOK {
		return keystore.State{}, fmt.Errorf("fortanix: status: %w", responseError(resp))
	}
	return keystore.State{Latency: time.Since(start)}, nil
}

// Close stops the background key check.
func (s *Store) Close() error {
	s.cancel()
	s.wg.Wait()
	s.http.CloseIdleConnections()
	return nil
}
