package api

import (
	"errors"
	"net/http"

	"github.com/openkes/openkes/internal/crypto"
	"github.com/openkes/openkes/internal/keyring"
	"github.com/openkes/openkes/kes"
	"github.com/openkes/openkes/keystore"
)

// The error catalogue is the SDK's: every error answer is a [kes.Error],
// an HTTP status plus the exact message text that clients (the SDK,
// kms-go) compare. The errors a client matches (key not found, not
// allowed, ...) are the SDK's sentinels, kes.Err*; this file adds only the
// answers the SDK has no sentinel for: the server's own failures, TLS
// rejections and the errors that name the request's argument.

// Fixed errors of the server that the SDK exports no sentinel for.
var (
	ErrNoHMAC = kes.NewError(http.StatusConflict, "key does not support HMAC")

	ErrInvalidBody       = kes.NewError(http.StatusBadRequest, "invalid request body")
	ErrInvalidImportBody = kes.NewError(http.StatusBadRequest, "invalid import key request body")

	ErrCertRequired = kes.NewError(http.StatusBadRequest, "tls: client certificate is required")
	ErrTooManyCerts = kes.NewError(http.StatusBadRequest, "tls: received more than one client certificate")
	ErrInsecure     = kes.NewError(http.StatusBadRequest, "insecure connection: TLS is required")

	ErrCreateKey  = kes.NewError(http.StatusBadGateway, "failed to create key")
	ErrReadKey    = kes.NewError(http.StatusBadGateway, "failed to read key")
	ErrDeleteKey  = kes.NewError(http.StatusBadGateway, "failed to delete key")
	ErrListKeys   = kes.NewError(http.StatusBadGateway, "failed to list keys")
	ErrRotateKey  = kes.NewError(http.StatusBadGateway, "failed to rotate key")
	ErrRestoreKey = kes.NewError(http.StatusBadGateway, "failed to restore key")
	ErrStoreDown  = kes.NewError(http.StatusGatewayTimeout, "key store is not reachable")
	ErrStoreError = kes.NewError(http.StatusBadGateway, "key store is unavailable")

	ErrGenerateKey       = kes.NewError(http.StatusInternalServerError, "failed to generate encryption key")
	ErrEncrypt           = kes.NewError(http.StatusInternalServerError, "failed to encrypt plaintext")
	ErrDecryptInternal   = kes.NewError(http.StatusInternalServerError, "failed to decrypt ciphertext")
	ErrCreateKeyInternal = kes.NewError(http.StatusInternalServerError, "failed to create key")
	ErrVersion           = kes.NewError(http.StatusInternalServerError, "failed to read server version")

	// ErrInternal is the answer to failures that have no upstream message
	// (e.g. a recovered panic). Details go only to the error log.
	ErrInternal = kes.NewError(http.StatusInternalServerError, "internal error")
)

// argError is the 400 answer for an invalid argument: "<what> '<arg>'
// <why>", as upstream words it.
func argError(what, arg, why string) kes.Error {
	return kes.NewError(http.StatusBadRequest, what+" '"+arg+"' "+why)
}

const invalidName = "is empty, too long or contains invalid characters"

// InvalidKeyName is the 400 answer for an invalid key name argument.
func InvalidKeyName(name string) kes.Error { return argError("key name", name, invalidName) }

// InvalidPolicyName is the 400 answer for an invalid policy name argument.
func InvalidPolicyName(name string) kes.Error { return argError("policy name", name, invalidName) }

// InvalidIdentity is the 400 answer for an invalid identity argument.
func InvalidIdentity(id string) kes.Error { return argError("identity", id, invalidName) }

// InvalidPattern is the 400 answer for an invalid listing pattern.
func InvalidPattern(pattern string) kes.Error {
	return argError("listing pattern", pattern, "is empty, too long or is invalid")
}

// UnsupportedAlgorithm is the 406 answer of key import for an unknown cipher.
func UnsupportedAlgorithm(cipher string) kes.Error {
	return kes.NewError(http.StatusNotAcceptable, "algorithm '"+cipher+"' is not supported")
}

// InvalidKeySize is the 406 answer of key import for key bytes that are not
// 32 bytes long.
func InvalidKeySize(cipher string) kes.Error {
	return kes.NewError(http.StatusNotAcceptable, "invalid key size for '"+cipher+"'")
}

// MethodNotAllowed is the 405 answer for a request whose method the route
// does not accept. The response must also carry the header
// "Accept: <want>".
func MethodNotAllowed(got, want string) kes.Error {
	return kes.NewError(http.StatusMethodNotAllowed, "received method '"+got+"' expected '"+want+"'")
}

// translations are the errors of the key store, crypto and keyring
// packages that have an answer of their own, checked in order.
var translations = []struct {
	from error
	to   kes.Error
}{
	{keystore.ErrExists, kes.ErrKeyExists},
	{keystore.ErrNotFound, kes.ErrKeyNotFound},
	{crypto.ErrDecrypt, kes.ErrDecrypt},
	{crypto.ErrNoHMAC, ErrNoHMAC},
	{keyring.ErrScheduled, kes.ErrKeyScheduled},
	{keyring.ErrNotScheduled, kes.ErrKeyNotScheduled},
	{keyring.ErrConflict, kes.ErrKeyConflict},
}

// Translate maps err to the API error to send. It is the only place that
// turns Go errors into answers.
//
//   - A [kes.Error] anywhere in err's chain is returned as is.
//   - keystore.ErrExists → 400 "key already exists" ([kes.ErrKeyExists]).
//   - keystore.ErrNotFound → 404 "key does not exist" ([kes.ErrKeyNotFound]).
//   - crypto.ErrDecrypt → 400 "decryption failed: ciphertext is not
//     authentic" ([kes.ErrDecrypt]).
//   - crypto.ErrNoHMAC → 409 "key does not support HMAC".
//   - keyring.ErrScheduled → 409 "key is scheduled for deletion"
//     ([kes.ErrKeyScheduled]); keyring.ErrNotScheduled → 400 "key is not
//     scheduled for deletion" ([kes.ErrKeyNotScheduled]);
//     keyring.ErrConflict → 409 "key rotation conflict"
//     ([kes.ErrKeyConflict]).
//   - a *keystore.UnreachableError → 504 "key store is not reachable"
//     (internal: the cause is logged).
//   - Anything else → generic (the route's generic failure, e.g. 502
//     "failed to read key"), and internal is true: the caller must log err
//     to the error log, never to the client.
//
// A zero generic means ErrInternal. Translate(nil, ...) returns the zero
// Error and false.
func Translate(err error, generic kes.Error) (e kes.Error, internal bool) {
	if err == nil {
		return kes.Error{}, false
	}
	if errors.As(err, &e) {
		return e, false
	}
	for _, t := range translations {
		if errors.Is(err, t.from) {
			return t.to, false
		}
	}
	if keystore.IsUnreachable(err) {
		// The original answers every key-store failure with the
		// operation's generic 502. An outage gets the clearer 504 of
		// /v1/ready instead, so clients can tell "try again later" from
		// a broken store; the cause is logged.
		return ErrStoreDown, true
	}
	if generic == (kes.Error{}) {
		generic = ErrInternal
	}
	return generic, true
}
