package kes

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
)

// Error is an error response of a KES server: its HTTP status code and
// message. Error values are comparable, so a returned error can be matched
// against the sentinels of this package with == or [errors.Is]. Both the
// status and the message must match.
type Error struct {
	code    int
	message string
}

// NewError returns an Error with the HTTP status code and message.
func NewError(code int, msg string) Error { return Error{code: code, message: msg} }

// Status returns the HTTP status code of the error response.
func (e Error) Status() int { return e.code }

// Error returns the error message sent by the server.
func (e Error) Error() string { return e.message }

// Well-known errors of a KES server. The status codes and messages are
// those of the KES API, so they also match errors returned by the original
// MinIO KES server. The OpenKES server answers with these very values: they
// are the one definition of these errors on both sides of the wire.
var (
	// ErrKeyExists: a key with that name already exists.
	ErrKeyExists = Error{http.StatusBadRequest, "key already exists"}

	// ErrKeyNotFound: the key does not exist.
	ErrKeyNotFound = Error{http.StatusNotFound, "key does not exist"}

	// ErrNotAllowed: the client's identity is unknown or its policy does
	// not allow the request.
	ErrNotAllowed = Error{http.StatusForbidden, "not authorized: insufficient permissions"}

	// ErrDecrypt: the ciphertext is malformed, was not produced with that
	// key, or its context (associated data) does not match.
	ErrDecrypt = Error{http.StatusBadRequest, "decryption failed: ciphertext is not authentic"}

	// ErrPolicyNotFound: the policy does not exist.
	ErrPolicyNotFound = Error{http.StatusNotFound, "policy does not exist"}

	// ErrIdentityNotFound: the identity is neither admin nor assigned to a
	// policy.
	ErrIdentityNotFound = Error{http.StatusNotFound, "identity does not exist"}
)

// Errors of the key lifecycle routes of OpenKES (rotate, rewrap, restore
// and deletion protection), which upstream KES does not have.
var (
	// ErrKeyScheduled: the key is scheduled for deletion, so it cannot be
	// used for generate, encrypt, rotate or rewrap, nor deleted again
	// until it is restored.
	ErrKeyScheduled = Error{http.StatusConflict, "key is scheduled for deletion"}

	// ErrKeyNotScheduled: restore of a key that is not scheduled for
	// deletion.
	ErrKeyNotScheduled = Error{http.StatusBadRequest, "key is not scheduled for deletion"}

	// ErrKeyConflict: concurrent rotations took every version number the
	// rotation tried; it may be retried.
	ErrKeyConflict = Error{http.StatusConflict, "key rotation conflict"}
)

// maxErrorBody is how much of an error response is read.
const maxErrorBody = 1 << 20

// parseErrorResponse turns a non-2xx response into an [Error] and closes
// its body. A JSON body (Content-Type application/json) contributes its
// "error" field, or else its "message" field; any other body contributes
// its text, trimmed. Messages of older KES servers are mapped to the
// current sentinels.
func parseErrorResponse(resp *http.Response) error {
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	if err != nil && len(body) == 0 {
		// The status is known even if the body is not; a truncated body
		// below is still better than nothing.
		return Error{resp.StatusCode, http.StatusText(resp.StatusCode)}
	}
	return decodeError(resp.StatusCode, resp.Header.Get("Content-Type"), body)
}

// decodeError builds the Error for an error response with the given status,
// Content-Type and body.
func decodeError(code int, contentType string, body []byte) Error {
	msg, ok := "", false
	if strings.HasPrefix(strings.ToLower(contentType), "application/json") {
		var v struct {
			Message string `json:"message"`
			Error   string `json:"error"`
		}
		if json.Unmarshal(body, &v) == nil {
			msg, ok = v.Message, true
			if v.Error != "" {
				msg = v.Error
			}
		}
	}
	if !ok {
		// Not JSON, or JSON we cannot read: the text is still the best
		// description of the failure we have.
		msg = strings.TrimSpace(string(body))
	}
	if msg == "" {
		msg = http.StatusText(code)
	}
	e := Error{code, msg}
	switch {
	case code == http.StatusBadRequest && msg == "key does already exist":
		return ErrKeyExists
	case code == http.StatusForbidden && msg == "prohibited by policy":
		return ErrNotAllowed
	}
	return e
}
