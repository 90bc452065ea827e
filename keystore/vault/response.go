package vault

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode"
)

// Vault's responses are untrusted input: every decoder here checks the
// shape it needs and returns an error, never panics (see the fuzz
// tests), and no error repeats a response value (which could be a
// token).

// Limits of the Vault messages kept in a ResponseError, so that a
// misbehaving server cannot flood the logs.
const (
	maxErrorMessages = 8
	maxErrorLength   = 256
)

// decodeErrors returns the messages of an {"errors":[...]} body, with
// white space (Vault's multi-error format uses new lines and tabs)
// collapsed and control characters removed. It returns nil for any other
// body.
func decodeErrors(body []byte) []string {
	var r struct {
		Errors []json.RawMessage `json:"errors"`
	}
	if json.Unmarshal(body, &r) != nil {
		return nil
	}
	var out []string
	for _, raw := range r.Errors {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			continue
		}
		s = strings.Join(strings.FieldsFunc(s, func(r rune) bool {
			return unicode.IsSpace(r) || unicode.IsControl(r)
		}), " ")
		if s == "" {
			continue
		}
		if len(s) > maxErrorLength {
			s = strings.ToValidUTF8(s[:maxErrorLength], "") + "..."
		}
		out = append(out, s)
		if len(out) == maxErrorMessages {
			break
		}
	}
	return out
}

// authInfo is the "auth" object of a login or renewal.
type authInfo struct {
	ClientToken   string `json:"client_token"`
	LeaseDuration int64  `json:"lease_duration"` // seconds; 0: no expiry
	Renewable     bool   `json:"renewable"`
}

// maxLease bounds lease durations (100 years in seconds), so that
// arithmetic with them cannot overflow.
const maxLease = 100 * 365 * 24 * 60 * 60

// decodeAuth returns the auth object of a login or renewal response.
func decodeAuth(body []byte) (*authInfo, error) {
	var r struct {
		Auth *authInfo `json:"auth"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("vault: invalid auth response: %w", err)
	}
	switch {
	case r.Auth == nil:
		return nil, errors.New("vault: the response has no auth object")
	case r.Auth.ClientToken == "":
		return nil, errors.New("vault: the response has no client token")
	case r.Auth.LeaseDuration < 0 || r.Auth.LeaseDuration > maxLease:
		return nil, fmt.Errorf("vault: invalid lease duration %d", r.Auth.LeaseDuration)
	}
	return r.Auth, nil
}

// health is the body of sys/health.
type health struct {
	Initialized *bool `json:"initialized"`
	Sealed      *bool `json:"sealed"`
	Standby     *bool `json:"standby"`
}

// decodeHealth decodes a sys/health body, which must state at least
// "initialized" and "sealed".
func decodeHealth(body []byte) (*health, error) {
	var h health
	if err := json.Unmarshal(body, &h); err != nil {
		return nil, fmt.Errorf("vault: invalid health response: %w", err)
	}
	if h.Initialized == nil || h.Sealed == nil {
		return nil, errors.New("vault: invalid health response: no seal status")
	}
	return &h, nil
}

// NoFieldError reports a K/V entry at a key's location that does not
// have the key's field: it was not written by KES.
type NoFieldError struct {
	Field string
}

func (e *NoFieldError) Error() string {
	return fmt.Sprintf("vault: the entry has no field %q (it was not written by KES)", e.Field)
}

// fieldValue returns the string value of field name of an entry.
func fieldValue(data map[string]json.RawMessage, name string) (string, error) {
	raw, ok := data[name]
	if !ok {
		return "", &NoFieldError{Field: name}
	}
	var v string
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", fmt.Errorf("vault: the entry's field %q is not a string", name)
	}
	return v, nil
}

// decodeKV1 returns the value of field name of a K/V v1 read response.
func decodeKV1(body []byte, name string) (string, error) {
	var r struct {
		Data map[string]json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return "", fmt.Errorf("vault: invalid K/V response: %w", err)
	}
	if r.Data == nil {
		return "", errors.New("vault: the K/V response has no data")
	}
	return fieldValue(r.Data, name)
}

// kv2Version is the "data" object of a K/V v2 read.
type kv2Version struct {
	Data     map[string]json.RawMessage `json:"data"`
	Metadata *struct {
		DeletionTime string `json:"deletion_time"`
		Destroyed    bool   `json:"destroyed"`
	} `json:"metadata"`
}

// decodeKV2 returns the value of field name of a K/V v2 read response,
// or deleted = true if the version was deleted or destroyed (data null),
// which Vault answers with 200 or, with the same body, 404.
func decodeKV2(body []byte, name string) (value string, deleted bool, err error) {
	var r struct {
		Data *kv2Version `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return "", false, fmt.Errorf("vault: invalid K/V response: %w", err)
	}
	switch {
	case r.Data == nil:
		return "", false, errors.New("vault: the K/V response has no data")
	case r.Data.Data == nil:
		return "", true, nil
	}
	v, err := fieldValue(r.Data.Data, name)
	return v, false, err
}

// isDeletedKV2 reports whether a 404 body of a K/V v2 read describes a
// deleted or destroyed version (and not a missing secret).
func isDeletedKV2(body []byte) bool {
	var r struct {
		Data *kv2Version `json:"data"`
	}
	return json.Unmarshal(body, &r) == nil && r.Data != nil && r.Data.Metadata != nil
}

// decodeList returns data.keys of a LIST response.
func decodeList(body []byte) ([]string, error) {
	var r struct {
		Data *struct {
			Keys []string `json:"keys"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("vault: invalid list response: %w", err)
	}
	if r.Data == nil {
		return nil, errors.New("vault: the list response has no data")
	}
	return r.Data.Keys, nil
}

// decodeDataString returns the string data.<field> of a response, as of
// transit encrypt (ciphertext) and decrypt (plaintext).
func decodeDataString(body []byte, field string) (string, error) {
	var r struct {
		Data map[string]json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return "", fmt.Errorf("vault: invalid response: %w", err)
	}
	raw, ok := r.Data[field]
	if !ok {
		return "", fmt.Errorf("vault: the response has no %s", field)
	}
	var v string
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", fmt.Errorf("vault: the response's %s is not a string", field)
	}
	return v, nil
}

// cleanPath returns p without leading, trailing and duplicate slashes.
// It rejects "." and ".." segments, which Vault would resolve (or
// refuse) and which could leave the configured mount or folder.
func cleanPath(p string) (string, error) {
	var segs []string
	for _, s := range strings.Split(strings.TrimSpace(p), "/") {
		switch s {
		case "":
		case ".", "..":
			return "", fmt.Errorf("invalid path segment '%s' in '%s'", s, p)
		default:
			segs = append(segs, s)
		}
	}
	return strings.Join(segs, "/"), nil
}

// cleanNamespace returns a namespace without surrounding slashes.
func cleanNamespace(ns string) string { return strings.Trim(strings.TrimSpace(ns), "/") }

// escapePath escapes every segment of a clean path for a URL.
func escapePath(p string) string {
	if p == "" {
		return ""
	}
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// join joins non-empty escaped path parts with '/'.
func join(parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, "/")
}
