//go:build !kes_omit_azure

package all

import (
	"github.com/openkes/openkes/keystore"
	"github.com/openkes/openkes/keystore/azure"
)

// The azure package does not register itself, like vault.
func init() { keystore.Register("azure.keyvault", azure.NewConfig) }
