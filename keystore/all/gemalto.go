//go:build !kes_omit_gemalto

package all

import (
	"github.com/openkes/openkes/keystore"
	"github.com/openkes/openkes/keystore/gemalto"
)

func init() { keystore.Register("gemalto.keysecure", gemalto.NewConfig) }
