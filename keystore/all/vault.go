//go:build !kes_omit_vault

package all

import (
	"github.com/openkes/openkes/keystore"
	"github.com/openkes/openkes/keystore/vault"
)

// The vault package does not register itself (see vault.NewConfig).
func init() { keystore.Register("vault", vault.NewConfig) }
