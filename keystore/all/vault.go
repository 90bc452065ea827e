//go:build !kes_omit_vault

package all

import (
	"github.com/openkes/openkes/keystore"
	"github.com/openkes/openkes/keystore/seal"
	"github.com/openkes/openkes/keystore/vault"
)

// Vault is a key store and, for the fs and etcd stores, a KEK
// (seal.vault).
func init() {
	keystore.Register("vault", vault.NewConfig)
	seal.RegisterKEK("vault", vault.NewKEKConfig)
}
