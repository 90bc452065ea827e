//go:build !kes_omit_gcp

package all

import _ "github.com/openkes/openkes/keystore/gcp" // registers "gcp.secretmanager"
