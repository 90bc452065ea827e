// Package all registers every key-store backend of OpenKES. Programs that
// read config files blank-import it:
//
//	import _ "github.com/openkes/openkes/keystore/all"
//
// Backends do not register themselves: each is registered here, from a
// file of its own, <name>.go, whose build tag kes_omit_<name> leaves it
// out, so that a binary can be built without a backend and without its
// dependencies:
//
//	go build -tags kes_omit_vault,kes_omit_etcd ./cmd/kes
//
// A config file naming a backend that was left out fails with
// "keystore.<kind>: not built into this binary (kes_omit_<name>)".
// TestOmitTags checks, for every file here, that its tag removes the
// backend's packages and the third-party modules only it needs.
package all
