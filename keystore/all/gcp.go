//go:build !kes_omit_gcp

package all

import (
	"github.com/openkes/openkes/keystore"
	"github.com/openkes/openkes/keystore/gcp"
)

func init() { keystore.Register("gcp.secretmanager", gcp.NewConfig) }
