// Package config reads the YAML configuration file of a KES server into a
// validated [File], from which [File.ServerConfig] builds a
// [server.Config]. It parses and validates only: loading certificates and
// connecting to the key store are left to the caller.
//
// The format is that of the original KES server (version: v1), so existing
// files keep working; ${VAR} references are resolved by [Parse]'s lookup
// function. Every problem of a file is reported at once, each with its
// dotted path (and, from [ReadFile], file and line), and unknown keys are
// warnings. Key store sections are decoded and validated by the backends
// registered with [keystore.Register], never here.
//
// docs/config.md is the reference of every setting, its default and its
// validation, and lists the differences from the original server
// (docs/config.md#differences-from-the-original-server).
package config
