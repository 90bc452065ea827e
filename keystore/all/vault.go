//go:build !kes_omit_vault

package all

import _ "github.com/openkes/openkes/keystore/vault" // registers "vault"
