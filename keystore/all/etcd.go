//go:build !kes_omit_etcd

package all

import (
	"github.com/openkes/openkes/keystore"
	"github.com/openkes/openkes/keystore/etcd"
)

func init() { keystore.Register("etcd", etcd.NewConfig) }
