// Package restclient holds what the REST key stores (keystore/gemalto,
// keystore/fortanix, keystore/entrust) share: an HTTP client that trusts
// a configured CA, a request helper that bounds every call by a timeout
// and classifies outages as [*keystore.UnreachableError], a [Session]
// that keeps a short-lived access token fresh in the background, and
// [Open], [Check] and [ResponseError] for the stores' Connect and
// answers. keystore/vault uses its [Backoff].
//
// # Errors
//
// A network error, a timeout, or an HTTP 429, 502, 503 or 504 answer is an
// outage: the service may come back without a restart, so the error wraps
// *keystore.UnreachableError and the server answers 504 and keeps serving
// cached keys. No error of this package contains a request body or a
// header value, so credentials sent in bodies or headers never end up in
// an error or a log line.
package restclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/openkes/openkes/internal/https"
	"github.com/openkes/openkes/keystore"
)

// DefaultTimeout bounds every request that has no shorter deadline.
const DefaultTimeout = 10 * time.Second

// MaxBody is the largest response body read. Stored keys are a few
// hundred bytes; a page of a listing is at most a few hundred names.
const MaxBody = 8 << 20

// NewHTTPClient returns an HTTP client for endpoint that adds the CAs in
// caPath (a PEM file or a directory of them; empty: none) to the system
// roots. It returns an error if endpoint is not an http(s) URL without
// query or fragment, or the CAs cannot be loaded.
func NewHTTPClient(endpoint, caPath string) (base string, client *http.Client, err error) {
	u, err := url.Parse(strings.TrimSpace(endpoint))
	if err != nil {
		return "", nil, fmt.Errorf("endpoint: %w", err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", nil, fmt.Errorf("endpoint: '%s' is not an http or https URL", endpoint)
	}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if caPath != "" {
		if tlsConf.RootCAs, err = https.LoadCertPool(caPath); err != nil {
			return "", nil, fmt.Errorf("tls.ca: %w", err)
		}
	}
	client = &http.Client{
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:       tlsConf,
			TLSHandshakeTimeout:   5 * time.Second,
			ResponseHeaderTimeout: DefaultTimeout,
			IdleConnTimeout:       30 * time.Second,
			MaxIdleConnsPerHost:   16,
			ForceAttemptHTTP2:     true,
		},
		// A redirect could send the credentials elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return strings.TrimRight(u.String(), "/"), client, nil
}

// Request is one call of a REST API.
type Request struct {
	Method string
	URL    string      // absolute
	Body   any         // marshalled as JSON unless nil
	Header http.Header // extra headers, e.g. Authorization
}

// Response is a complete answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Do sends r with client, bounded by DefaultTimeout unless ctx has a
// shorter deadline, and reads the whole answer. Transport failures,
// timeouts and the status codes of an overloaded or absent service (429,
// 502, 503, 504) return an error wrapping *keystore.UnreachableError;
// other answers, whatever their status, return a Response. The error
// names the method and the URL's path only.
func Do(ctx context.Context, client *http.Client, r *Request) (*Response, error) {
	ctx, cancel := context.WithTimeout(ctx, DefaultTimeout)
	defer cancel()
	var body io.Reader
	var raw []byte
	if r.Body != nil {
		var err error
		if raw, err = json.Marshal(r.Body); err != nil {
			return nil, fmt.Errorf("encoding the request: %w", err)
		}
		body = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, r.URL, body)
	if err != nil {
		clear(raw)
		return nil, fmt.Errorf("%s: %w", r.Method, err)
	}
	what := r.Method + " " + req.URL.Path
	for k, v := range r.Header {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	clear(raw)
	if err != nil {
		return nil, &keystore.UnreachableError{Err: fmt.Errorf("%s: %w", what, stripURL(err))}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody+1))
	if err != nil {
		return nil, &keystore.UnreachableError{Err: fmt.Errorf("%s: reading the response: %w", what, stripURL(err))}
	}
	if len(data) > MaxBody {
		return nil, fmt.Errorf("%s: response body too large", what)
	}
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return nil, &keystore.UnreachableError{Err: fmt.Errorf("%s: %d %s", what, resp.StatusCode, http.StatusText(resp.StatusCode))}
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: data}, nil
}

// stripURL removes the *url.Error wrapper, whose text repeats the whole
// URL (with its query); the caller names the path itself.
func stripURL(err error) error {
	var u *url.Error
	if errors.As(err, &u) {
		if u.Timeout() {
			return fmt.Errorf("timeout: %w", u.Err)
		}
		return u.Err
	}
	return err
}

// Message returns a short, printable message from an error body: the
// string (or number) fields named in keys of a JSON object, in that
// order, joined with ": ", or else the body itself. Vendors put
// human-readable text there; it never holds a credential the client sent.
// Control characters become '?' (the text goes into log lines) and the
// result is cut to 200 characters.
func Message(body []byte, keys ...string) string {
	var obj map[string]any
	if json.Unmarshal(body, &obj) == nil {
		var parts []string
		for _, k := range keys {
			switch v := obj[k].(type) {
			case string:
				if v != "" {
					parts = append(parts, v)
				}
			case float64:
				parts = append(parts, fmt.Sprint(v))
			}
		}
		return sanitize(strings.Join(parts, ": "))
	}
	return sanitize(strings.TrimSpace(string(body)))
}

// sanitize replaces what is not printable and shortens s.
func sanitize(s string) string {
	const max = 200
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n == max {
			b.WriteString("...")
			break
		}
		if r < 0x20 || r == 0x7f || r == utf8.RuneError || (r >= 0x80 && r < 0xa0) {
			r = '?'
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}
