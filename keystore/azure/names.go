package azure

import (
	"errors"
	"strings"
)

// Key Vault secret names are 1 to 127 characters of [0-9a-zA-Z-] and
// compared case-insensitively; KES names are 1 to 80 characters of
// [0-9A-Za-z_-] and case-sensitive. The mapping below keeps the names
// that both can hold alike unchanged and encodes the rest.
//
// A KES name of lower-case letters, digits and '-' only (what most
// deployments use, e.g. "minio-default-key") is the secret's name
// unchanged, as with the original server. Any other name, and any name
// starting with the reserved prefix "kes--", is stored as "kes--" followed
// by the name with every character outside [0-9a-z] escaped by '-': an
// upper-case letter X as "-x", '_' as "-0" and '-' as "-1". So "MY-KEY"
// is "kes---m-y-1-k-e-y" and "my_app" is "kes--my-0app". The encoding
// is injective and uses no upper-case letters, so names that differ only
// in case do not collide.
//
// Names with upper-case letters but no '_' are also looked up unchanged
// (see legacyName): the original server stored them that way.
const encodedPrefix = "kes--"

// maxSecretName is Key Vault's limit on secret names.
const maxSecretName = 127

var errName = errors.New("invalid key name")

func isPlain(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

// secretName returns the Key Vault secret name for a KES key name.
func secretName(name string) (string, error) {
	if name == "" {
		return "", errName
	}
	plain := !strings.HasPrefix(name, encodedPrefix)
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case isPlain(c) || c == '-':
		case c >= 'A' && c <= 'Z' || c == '_':
			plain = false
		default:
			return "", errName
		}
	}
	if plain {
		if len(name) > maxSecretName {
			return "", errors.New("key name too long for Azure Key Vault")
		}
		return name, nil
	}
	var b strings.Builder
	b.WriteString(encodedPrefix)
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case isPlain(c):
			b.WriteByte(c)
		case c >= 'A' && c <= 'Z':
			b.WriteByte('-')
			b.WriteByte(c - 'A' + 'a')
		case c == '_':
			b.WriteString("-0")
		case c == '-':
			b.WriteString("-1")
		}
	}
	if b.Len() > maxSecretName {
		return "", errors.New("key name too long for Azure Key Vault once encoded (too many upper-case letters, '_' or '-')")
	}
	return b.String(), nil
}

// keyName returns the KES key name of a Key Vault secret name, and false
// for an encoded name that is not well-formed (not written by OpenKES).
func keyName(secret string) (string, bool) {
	if len(secret) < len(encodedPrefix) || !strings.EqualFold(secret[:len(encodedPrefix)], encodedPrefix) {
		return secret, secret != ""
	}
	s := strings.ToLower(secret[len(encodedPrefix):])
	if s == "" {
		return "", false
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '-' {
			if !isPlain(c) {
				return "", false
			}
			b.WriteByte(c)
			continue
		}
		if i++; i == len(s) {
			return "", false
		}
		switch c := s[i]; {
		case c >= 'a' && c <= 'z':
			b.WriteByte(c - 'a' + 'A')
		case c == '0':
			b.WriteByte('_')
		case c == '1':
			b.WriteByte('-')
		default:
			return "", false
		}
	}
	return b.String(), true
}

// legacyName returns the name under which the original server stored
// name, if that differs from secretName(name): names with upper-case
// letters and without '_', which Key Vault accepts as they are.
func legacyName(name string) (string, bool) {
	if len(name) > maxSecretName || strings.HasPrefix(name, encodedPrefix) || strings.ToLower(name) == name {
		return "", false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !(isPlain(c) || c == '-' || c >= 'A' && c <= 'Z') {
			return "", false
		}
	}
	return name, true
}
