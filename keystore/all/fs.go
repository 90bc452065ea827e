//go:build !kes_omit_fs

package all

import _ "github.com/openkes/openkes/keystore/fs" // registers "fs"
