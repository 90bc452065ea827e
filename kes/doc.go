// Package kes is the OpenKES client SDK: a Go client for servers that speak
// the MinIO KES HTTP API (OpenKES itself and the original MinIO KES).
//
// The package imports the Go standard library only, so that programs which
// embed it (the kes command-line tool, MinIO-style object stores, tests)
// pull in no further dependencies.
//
// # Authentication
//
// A KES server authenticates every request by the TLS client certificate
// the caller presents (mutual TLS). The caller's [Identity] is the
// lowercase hex SHA-256 of the certificate's DER SubjectPublicKeyInfo; see
// [IdentityOf]. The simplest credential is an [APIKey]: an Ed25519 key
// written as "kes:v1:<base64>". [NewClient] turns an API key into a
// self-signed client certificate with [GenerateCertificate]. Callers that
// hold a certificate issued by a CA use [NewClientWithConfig].
//
// # Endpoints and failover
//
// A [Client] holds one or more server endpoints. Each request goes to the
// first endpoint that is not in a 30-second penalty period; a transport
// error or a 5xx response other than 501 puts the endpoint into that period
// and the request moves on to the next endpoint. Request bodies are held in
// memory, so they can be sent again.
//
// # Errors
//
// Every error response of a KES server becomes an [Error] value that
// carries the HTTP status and the server's message. Error values are
// comparable, so well-known failures can be tested with [errors.Is], e.g.
//
//	if errors.Is(err, kes.ErrKeyNotFound) {
//		// create the key
//	}
//
// Transport failures (connection refused, TLS handshake failures, context
// cancellation) are returned as the errors of [net/http], unwrapped by this
// package, so [context.Canceled] and friends can be matched as usual.
// Malformed server responses produce errors that start with "kes: ".
//
// # Key lifecycle
//
// OpenKES servers keep versions of a key and can protect keys from
// deletion, extensions that upstream servers lack (docs/keys.md).
// [Client.RotateKey] adds a version, which [Client.GenerateKey] and
// [Client.Encrypt] then use; [Client.Decrypt] needs no version, because a
// ciphertext names its own. [Client.RewrapKey] moves a ciphertext to the
// newest version on the server. On a server with a deletion window,
// [Client.DeleteKey] schedules the deletion and [Client.RestoreKey]
// cancels it. [KeyInfo] and [DEK] carry the version fields only for
// rotated keys, so for every other key they are as before.
//
// # Differences from the upstream SDK
//
// The client follows the wire format of the KES API exactly, but fixes a
// few decoding mistakes of the upstream kms-go SDK:
//   - [State.KeyStoreLatency] is read as milliseconds (the unit the server
//     sends), and a state with keystore_unreachable=true is not an error.
//   - [AuditResponse.Time] is read as milliseconds.
//   - Paths of prefix routes always keep their trailing slash, e.g.
//     ListKeys(ctx, "", 0) requests GET /v1/key/list/ and needs no redirect.
//   - The client certificate is supplied through
//     [crypto/tls.Config.GetClientCertificate], so it is sent even when the
//     server advertises a list of acceptable CAs.
//
// The HTTP API itself is described in the OpenKES documentation (docs/)
// and by the original [MinIO KES] project.
//
// [MinIO KES]: https://github.com/minio/kes
package kes
