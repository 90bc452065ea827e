package api

import (
	"errors"
	"net/http"

	"github.com/openkes/openkes/internal/crypto"
	"github.com/openkes/openkes/keystore"
)

// Error is an API error: the HTTP status and the exact message text of the
// response body. Clients (kms-go) compare both, so neither may change.
//
// Error values of the catalogue are shared; never modify one.
type Error struct {
	Status  int
	Message string
}

// Error returns the message text.
func (e *Error) Error() string { return e.Message }

// Is reports whether target is an *Error with the same status and message,
// so errors.Is works with freshly constructed errors as well.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t != nil && e != nil && t.Status == e.Status && t.Message == e.Message
}

func newError(status int, msg string) *Error { return &Error{Status: status, Message: msg} }

// The fixed part of the error catalogue (spec 3.23).
var (
	ErrKeyExists        = newError(http.StatusBadRequest, "key already exists")
	ErrKeyNotFound      = newError(http.StatusNotFound, "key does not exist")
	ErrNotAllowed       = newError(http.StatusForbidden, "not authorized: insufficient permissions")
	ErrDecrypt          = newError(http.StatusBadRequest, "decryption failed: ciphertext is not authentic")
	ErrPolicyNotFound   = newError(http.StatusNotFound, "policy does not exist")
	ErrIdentityNotFound = newError(http.StatusNotFound, "identity does not exist")
	ErrNoHMAC           = newError(http.StatusConflict, "key does not support HMAC")

	ErrInvalidBody       = newError(http.StatusBadRequest, "invalid request body")
	ErrInvalidImportBody = newError(http.StatusBadRequest, "invalid import key request body")

	ErrCertRequired = newError(http.StatusBadRequest, "tls: client certificate is required")
	ErrTooManyCerts = newError(http.StatusBadRequest, "tls: received more than one client certificate")
	ErrInsecure     = newError(http.StatusBadRequest, "insecure connection: TLS is required")

	ErrCreateKey  = newError(http.StatusBadGateway, "failed to create key")
	ErrReadKey    = newError(http.StatusBadGateway, "failed to read key")
	ErrDeleteKey  = newError(http.StatusBadGateway, "failed to delete key")
	ErrListKeys   = newError(http.StatusBadGateway, "failed to list keys")
	ErrStoreDown  = newError(http.StatusGatewayTimeout, "key store is not reachable")
	ErrStoreError = newError(http.StatusBadGateway, "key store is unavailable")

	ErrGenerateKey       = newError(http.StatusInternalServerError, "failed to generate encryption key")
	ErrEncrypt           = newError(http.StatusInternalServerError, "failed to encrypt plaintext")
	ErrDecryptInternal   = newError(http.StatusInternalServerError, "failed to decrypt ciphertext")
	ErrCreateKeyInternal = newError(http.StatusInternalServerError, "failed to create key")
	ErrVersion           = newError(http.StatusInternalServerError, "failed to read server version")

	// ErrInternal is the answer to failures that have no upstream message
	// (e.g. a recovered panic). Details go only to the error log.
	ErrInternal = newError(http.StatusInternalServerError, "internal error")
)

// InvalidKeyName is the 400 answer for an invalid key name argument.
func InvalidKeyName(name string) *Error {
	return newError(http.StatusBadRequest, "key name '"+name+"' is empty, too long or contains invalid characters")
}

// InvalidPolicyName is the 400 answer for an invalid policy name argument.
func InvalidPolicyName(name string) *Error {
	return newError(http.StatusBadRequest, "policy name '"+name+"' is empty, too long or contains invalid characters")
}

// InvalidIdentity is the 400 answer for an invalid identity argument.
func InvalidIdentity(id string) *Error {
	return newError(http.StatusBadRequest, "identity '"+id+"' is empty, too long or contains invalid characters")
}

// InvalidPattern is the 400 answer for an invalid listing pattern.
func InvalidPattern(pattern string) *Error {
	return newError(http.StatusBadRequest, "listing pattern '"+pattern+"' is empty, too long or is invalid")
}

// UnsupportedAlgorithm is the 406 answer of key import for an unknown cipher.
func UnsupportedAlgorithm(cipher string) *Error {
	return newError(http.StatusNotAcceptable, "algorithm '"+cipher+"' is not supported")
}

// UnsupportedFIPSAlgorithm is the 406 answer of key import for a cipher
// that a FIPS 140-2 build refuses.
func UnsupportedFIPSAlgorithm(cipher string) *Error {
	return newError(http.StatusNotAcceptable, "algorithm '"+cipher+"' not supported by FIPS 140-2")
}

// InvalidKeySize is the 406 answer of key import for key bytes that are not
// 32 bytes long.
func InvalidKeySize(cipher string) *Error {
	return newError(http.StatusNotAcceptable, "invalid key size for '"+cipher+"'")
}

// MethodNotAllowed is the 405 answer for a request whose method the route
// does not accept. The response must also carry the header
// "Accept: <want>".
func MethodNotAllowed(got, want string) *Error {
	return newError(http.StatusMethodNotAllowed, "received method '"+got+"' expected '"+want+"'")
}

// RoutingError is the 500 answer for a request that reached the wrong
// handler. It should never happen.
func RoutingError(path, route string) *Error {
	return newError(http.StatusInternalServerError, "routing error: request '"+path+"' handled by route '"+route+"'")
}

// Translate maps err to the API error to send.
//
//   - An *Error anywhere in err's chain is returned as is.
//   - keystore.ErrExists → 400 "key already exists".
//   - keystore.ErrNotFound → 404 "key does not exist".
//   - crypto.ErrDecrypt → 400 "decryption failed: ciphertext is not authentic".
//   - crypto.ErrNoHMAC → 409 "key does not support HMAC".
//   - a *keystore.UnreachableError → 504 "key store is not reachable"
//     (internal: the cause is logged).
//   - Anything else → generic (the route's generic failure, e.g. 502
//     "failed to read key"), and internal is true: the caller must log err
//     to the error log, never to the client.
//
// A nil generic means ErrInternal. Translate(nil, ...) returns (nil, false).
func Translate(err error, generic *Error) (e *Error, internal bool) {
	if err == nil {
		return nil, false
	}
	if errors.As(err, &e) && e != nil {
		return e, false
	}
	switch {
	case errors.Is(err, keystore.ErrExists):
		return ErrKeyExists, false
	case errors.Is(err, keystore.ErrNotFound):
		return ErrKeyNotFound, false
	case errors.Is(err, crypto.ErrDecrypt):
		return ErrDecrypt, false
	case errors.Is(err, crypto.ErrNoHMAC):
		return ErrNoHMAC, false
	case keystore.IsUnreachable(err):
		// The original answers every key-store failure with the
		// operation's generic 502. An outage gets the clearer 504 of
		// /v1/ready instead, so clients can tell "try again later" from
		// a broken store; the cause is logged.
		return ErrStoreDown, true
	}
	if generic == nil {
		generic = ErrInternal
	}
	return generic, true
}
