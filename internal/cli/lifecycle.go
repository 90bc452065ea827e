package cli

import (
	"context"
	"encoding/base64"
	"strconv"

	"github.com/openkes/openkes/kes"
)

// The key lifecycle commands: rotate, rewrap and restore, OpenKES
// extensions (docs/keys.md). 'kes key info' shows versions and deletions.

const keyRotateUsage = `Usage:
    kes key rotate [options] <name>

Adds a new version to the key and prints its number; a key that was
never rotated has version 1. From then on new data keys and ciphertexts
use the new version, while those of older versions still decrypt: the
ciphertext names its version. 'kes key rewrap' moves a ciphertext to the
newest version. A key scheduled for deletion cannot be rotated.

Options:
    --json                   Print {"name":"<name>","version":<n>}.
` + clientOptions + `
Examples:
    $ kes key rotate my-key
    $ kes key rotate my-key --json | jq .version
`

// keyRotateJSON is the JSON of 'kes key rotate'.
type keyRotateJSON struct {
	Name    string `json:"name"`
	Version int    `json:"version"`
}

var keyRotateCommand = describeCommand("rotate", keyRotateUsage, "key name", "failed to rotate key %q",
	func(client *kes.Client, ctx context.Context, name string) (keyRotateJSON, error) {
		version, err := client.RotateKey(ctx, name)
		return keyRotateJSON{Name: name, Version: version}, err
	},
	func(c *call, r keyRotateJSON) error {
		if c.json {
			return c.printJSON(r)
		}
		c.fields().
			add("Name", r.Name).
			add("Version", strconv.Itoa(r.Version)).
			print("")
		return nil
	})

const keyRewrapUsage = `Usage:
    kes key rewrap [options] <name> <ciphertext> [<context>]

Re-encrypts a ciphertext, in base64, with the newest version of the key:
the server decrypts it and encrypts the plaintext again, which never
leaves the server. The context, in base64, must be the one used to
encrypt; the new ciphertext has the same context. On a terminal the new
ciphertext and its key version are printed as text, otherwise as JSON:
{"ciphertext":"<base64>","version":<n>}.

Options:
    --json                   Print JSON on a terminal, too.
` + clientOptions + `
Examples:
    $ kes key rewrap my-key "$CIPHERTEXT"
    $ kes key rewrap my-key "$CIPHERTEXT" "$(printf bucket/object | base64)" | jq -r .ciphertext
`

var keyRewrapCommand = valuesCommand("rewrap", keyRewrapUsage, "failed to rewrap ciphertext",
	argRule{min: 2, max: 3, what: "key name and ciphertext", base64: []string{1: "ciphertext", 2: "context"}, names: 1},
	func(ctx context.Context, c *call, s *session) ([]value, error) {
		ciphertext, version, err := s.client.RewrapKey(ctx, c.args[0], c.decoded[1], c.decoded[2])
		return []value{
			{"ciphertext", base64.StdEncoding.EncodeToString(ciphertext)},
			{"version", version},
		}, err
	})

const keyRestoreUsage = `Usage:
    kes key restore [options] <name>...

Restores each key scheduled for deletion, in order, and stops at the
first error. A restored key works as before it was deleted. Keys are
scheduled for deletion by 'kes key rm' on a server with a deletion
window (config: deletion.window); once the window has ended, the key is
gone and cannot be restored.

Options:
` + connOptions + helpOption + `
Examples:
    $ kes key restore my-key
`

var keyRestoreCommand = perNameCommand("restore", keyRestoreUsage, "failed to restore key %q", (*kes.Client).RestoreKey)
