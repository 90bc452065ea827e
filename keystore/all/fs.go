//go:build !kes_omit_fs

package all

import (
	"github.com/openkes/openkes/keystore"
	"github.com/openkes/openkes/keystore/fs"
)

func init() { keystore.Register("fs", fs.NewConfig) }
