//go:build !kes_omit_entrust

package all

import (
	"github.com/openkes/openkes/keystore"
	"github.com/openkes/openkes/keystore/entrust"
)

func init() { keystore.Register("entrust.keycontrol", entrust.NewConfig) }
