// Package all registers every key-store backend of OpenKES. Programs that
// read config files blank-import it:
//
//	import _ "github.com/openkes/openkes/keystore/all"
//
// Each backend is registered from its own file, which a build tag
// kes_omit_<name> leaves out, so a binary can be built without a backend
// and without its dependencies.
package all
