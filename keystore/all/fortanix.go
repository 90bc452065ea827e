//go:build !kes_omit_fortanix

package all

import (
	"github.com/openkes/openkes/keystore"
	"github.com/openkes/openkes/keystore/fortanix"
)

func init() { keystore.Register("fortanix.sdkms", fortanix.NewConfig) }
