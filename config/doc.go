// Package config reads the YAML configuration file of a KES server into a
// validated [File], from which [File.ServerConfig] builds a
// [server.Config]. It parses and validates only: loading certificates and
// connecting to the key store are left to the caller.
//
// # File format
//
// The file is the one of the original KES server (version: v1), a single
// YAML mapping:
//
//	version: v1                   # optional
//	address: 0.0.0.0:7373         # [ip]:port
//	admin:
//	  identity: ${KES_ADMIN}      # required
//	tls:
//	  key: ./server.key           # required
//	  cert: ./server.cert         # required
//	  password: ""                # for RFC 1423 encrypted keys
//	  auth: off                   # on: verify client certificates
//	  ca: ./ca/                   # file or directory
//	policy:
//	  my-app:
//	    allow: [/v1/key/create/my-app*, /v1/key/generate/my-app*]
//	    deny:  [/v1/key/generate/my-app-internal*]
//	    identities:
//	    - ${MY_APP_IDENTITY}
//	cache:
//	  expiry: {any: 5m, unused: 30s, offline: 0s}
//	log:
//	  error: on                   # DEBUG, INFO, WARN, ERROR[+-N], N, ON, OFF
//	  audit: on                   # text lines on stdout
//	  audit_file: ./audit.log     # JSON lines, reopened on SIGHUP
//	  audit_sync: false           # true: write each record at once
//	api:
//	  /v1/metrics: {skip_auth: true, timeout: 15s}
//	keys:
//	  - name: my-app-key
//	keystore:
//	  fs:
//	    path: ./keys
//
// A scalar whose whole value is ${NAME} is replaced by the environment
// variable NAME before it is decoded, so ${VAR} works for durations and
// booleans too; a missing variable is an error, an empty one is not.
// Text around a reference ("pre-${X}") is taken literally, and policy
// allow/deny patterns are never expanded. Inside flow collections ({...}
// or [...]) a reference must be quoted, '${NAME}', because YAML reads its
// braces as syntax. Durations are Go durations
// ("5m"); plain numbers are rejected. Booleans accept yes/no and on/off.
//
// Exactly one key store must be configured under keystore. Sections of
// backends registered with [keystore.Register] (keystore/all registers
// them all) are decoded into their Config and validated by it: this
// package knows the names of the sections the original server
// understands (vault, aws.secretsmanager, ...), never their fields. A
// section whose backend is not built into the program (left out by its
// build tag kes_omit_<name>) is reported by [File.KeyStoreError] as
// "keystore.vault: not built into this binary (kes_omit_vault)".
//
// # Differences from the original server
//
//   - Cache defaults are the documented ones: any 5m, unused 30s, offline
//     off, each applied only when the file does not set it. The original
//     ends up with any=30s and no unused expiry for a file without a cache
//     section (see applyDefaults).
//   - api.<path>.skip_auth is only allowed for /v1/ready, /v1/status,
//     /v1/metrics and /v1/api; the original allowed it on every route,
//     including key creation.
//   - Errors carry the dotted path of the setting, e.g.
//     "keystore.vault.endpoint: required" instead of "kesconf: invalid
//     vault keystore: no endpoint specified", and every problem of a file
//     is reported at once, not only the first.
//   - Unknown keys and api paths that name no route, which the original
//     silently ignores, are reported as warnings. Duplicate keys are
//     errors, as in the original.
//   - Policy names, identities and pre-defined key names are checked with
//     the name rules of the API when the file is read.
//   - log.audit_file and log.audit_sync are new: an audit file of JSON
//     lines, written whatever log.audit says (see docs/monitoring.md).
//   - A keystore.etcd section is understood (endpoints, prefix, username,
//     password, tls, timeout).
package config
