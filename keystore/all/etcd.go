//go:build !kes_omit_etcd

package all

import _ "github.com/openkes/openkes/keystore/etcd" // registers "etcd"
