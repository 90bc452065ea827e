// Package interop holds black-box tests that drive an OpenKES server with
// the upstream KES client SDK, github.com/minio/kms-go/kes, over real TLS.
//
// It is a separate module so that the AGPL-licensed SDK is only ever a
// test dependency of OpenKES and never part of the main module.
package interop
