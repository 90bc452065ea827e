package kes

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestErrorSentinels(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		err    Error
		status int
		msg    string
	}{
		{"ErrKeyExists", ErrKeyExists, 400, "key already exists"},
		{"ErrKeyNotFound", ErrKeyNotFound, 404, "key does not exist"},
		{"ErrNotAllowed", ErrNotAllowed, 403, "not authorized: insufficient permissions"},
		{"ErrDecrypt", ErrDecrypt, 400, "decryption failed: ciphertext is not authentic"},
		{"ErrPolicyNotFound", ErrPolicyNotFound, 404, "policy does not exist"},
		{"ErrIdentityNotFound", ErrIdentityNotFound, 404, "identity does not exist"},
		{"ErrKeyScheduled", ErrKeyScheduled, 409, "key is scheduled for deletion"},
		{"ErrKeyNotScheduled", ErrKeyNotScheduled, 400, "key is not scheduled for deletion"},
		{"ErrKeyConflict", ErrKeyConflict, 409, "key rotation conflict"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.err.Status() != tt.status || tt.err.Error() != tt.msg {
				t.Errorf("%s = %d %q, want %d %q", tt.name, tt.err.Status(), tt.err.Error(), tt.status, tt.msg)
			}
			if NewError(tt.status, tt.msg) != tt.err {
				t.Errorf("NewError(%d, %q) != %s", tt.status, tt.msg, tt.name)
			}
		})
	}
	// Status and message must both match.
	if errors.Is(NewError(400, "key does not exist"), ErrKeyNotFound) {
		t.Error("an error with another status matches ErrKeyNotFound")
	}
}

func TestParseErrorResponse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		status      int
		contentType string
		body        string
		want        Error
	}{
		{"JSON message", 404, "application/json", "{\"message\":\"key does not exist\"\n}", ErrKeyNotFound},
		{"JSON error field wins", 400, "application/json", `{"message":"ignored","error":"key already exists"}`, ErrKeyExists},
		{"JSON empty error field", 403, "application/json", `{"message":"not authorized: insufficient permissions","error":""}`, ErrNotAllowed},
		{"JSON with charset", 400, "application/json; charset=utf-8", `{"message":"decryption failed: ciphertext is not authentic"}`, ErrDecrypt},
		{"JSON policy", 404, "application/json", `{"message":"policy does not exist"}`, ErrPolicyNotFound},
		{"JSON identity", 404, "application/json", `{"message":"identity does not exist"}`, ErrIdentityNotFound},
		{"JSON key scheduled", 409, "application/json", "{\"message\":\"key is scheduled for deletion\"\n}", ErrKeyScheduled},
		{"JSON key not scheduled", 400, "application/json", "{\"message\":\"key is not scheduled for deletion\"\n}", ErrKeyNotScheduled},
		{"JSON rotation conflict", 409, "application/json", "{\"message\":\"key rotation conflict\"\n}", ErrKeyConflict},
		{"JSON other", 406, "application/json", `{"message":"algorithm 'AES128' is not supported"}`, NewError(406, "algorithm 'AES128' is not supported")},
		{"method not allowed", 405, "application/json", "{\"message\":\"received method 'GET' expected 'PUT'\"\n}", NewError(405, "received method 'GET' expected 'PUT'")},
		{"plain text 404", 404, "text/plain; charset=utf-8", "404 page not found\n", NewError(404, "404 page not found")},
		{"no content type", 502, "", "  bad gateway \n", NewError(502, "bad gateway")},
		{"invalid JSON as text", 500, "application/json", `{"message":`, NewError(500, `{"message":`)},
		{"empty body", 403, "", "", NewError(403, "Forbidden")},
		{"legacy key exists", 400, "application/json", `{"message":"key does already exist"}`, ErrKeyExists},
		{"legacy key exists as text", 400, "text/plain", "key does already exist\n", ErrKeyExists},
		{"legacy prohibited by policy", 403, "text/plain", "prohibited by policy", ErrNotAllowed},
		{"legacy message with other status", 404, "text/plain", "prohibited by policy", NewError(404, "prohibited by policy")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp := &http.Response{
				StatusCode: tt.status,
				Header:     http.Header{},
				Body:       io.NopCloser(strings.NewReader(tt.body)),
			}
			if tt.contentType != "" {
				resp.Header.Set("Content-Type", tt.contentType)
			}
			err := parseErrorResponse(resp)
			if !errors.Is(err, tt.want) {
				t.Errorf("parseErrorResponse(%d %q) = %#v, want %#v", tt.status, tt.body, err, tt.want)
			}
		})
	}
}

func TestParseErrorResponseLimit(t *testing.T) {
	t.Parallel()
	body := strings.Repeat("x", 2*maxErrorBody)
	resp := &http.Response{StatusCode: 500, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(body))}
	err := parseErrorResponse(resp)
	if got := len(err.Error()); got != maxErrorBody {
		t.Errorf("len(message) = %d, want %d", got, maxErrorBody)
	}
}
