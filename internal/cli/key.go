package cli

import (
	"context"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/openkes/openkes/kes"
)

const keyUsage = `Usage:
    kes key <command> [options] [arguments]

Commands:
    create                   Create new keys.
    import                   Import a key.
    info                     Describe a key.
    describe                 Describe a key (the same as info).
    ls                       List keys.
    rm                       Delete keys.
    restore                  Restore keys scheduled for deletion.
    rotate                   Add a new version to a key.
    rewrap                   Re-encrypt a ciphertext with a key's newest version.
    encrypt                  Encrypt a message.
    decrypt                  Decrypt a ciphertext.
    dek                      Generate a data encryption key.
    hmac                     Compute an HMAC of a message.

Options:
    -h, --help               Print command line options.

Examples:
    $ kes key create my-key
    $ kes key dek my-key
    $ kes key ls
`

var keyCommand = &command{
	name:  "key",
	usage: keyUsage,
	subs: []*command{
		keyCreateCommand, keyImportCommand, keyInfoCommand, keyDescribeCommand, keyLsCommand,
		keyRmCommand, keyRestoreCommand, keyRotateCommand, keyRewrapCommand,
		keyEncryptCommand, keyDecryptCommand, keyDEKCommand, keyHMACCommand,
	},
}

// clientOptions is the usage text of the options of most client
// commands: --color, the connection options and --help.
const clientOptions = `    --color <when>           Colour the output: auto, never or always.
` + connOptions + helpOption

// helpOption is the usage text of --help.
const helpOption = `    -h, --help               Print command line options.
`

// connOptions is the usage text of the connection options.
const connOptions = `    -s, --server <host:port> KES server(s), comma-separated. Default: $KES_SERVER,
                             else 127.0.0.1:7373.
    -a, --api-key <key>      API key. Default: $KES_API_KEY. Without an API
                             key, $KES_CLIENT_CERT and $KES_CLIENT_KEY name
                             a client certificate and its private key.
        --ca <path>          Trust the CA certificate(s) in this PEM file or
                             directory. Default: $KES_CA.
    -k, --insecure           Do not verify the server certificate.
`

const keyCreateUsage = `Usage:
    kes key create [options] <name>...

Creates a new key for each name, in order, and stops at the first error.

Options:
` + connOptions + helpOption + `
Examples:
    $ kes key create my-key
    $ kes key create my-app-1 my-app-2
`

var keyCreateCommand = perNameCommand("create", keyCreateUsage, "failed to create key %q", (*kes.Client).CreateKey)

// perNameCommand returns a command that sends one request per argument,
// a key name, in order, and stops at the first error, which failure
// describes.
func perNameCommand(name, usage, failure string, do func(*kes.Client, context.Context, string) error) *command {
	return &command{
		name:  name,
		usage: usage,
		opts:  optConn,
		args:  argRule{min: 1, max: -1, what: "key name", names: -1},
		run: connected(func(ctx context.Context, c *call, s *session) error {
			for _, name := range c.args {
				if err := do(s.client, ctx, name); err != nil {
					return s.fail(err, failure, name)
				}
			}
			return nil
		}),
	}
}

const keyImportUsage = `Usage:
    kes key import [options] <name> <key>

Imports a 256-bit key, given in base64, as an AES256 key. A key of "-"
is read from stdin, so that it does not show up in process listings.

Options:
    --algorithm <alg>        AES256 (default) or ChaCha20.
` + connOptions + helpOption + `
Examples:
    $ kes key import my-key RSiw1iKMEz3rZEVeVTS7gB5IMjuKf8qKvbgnWIJYKlM=
    $ head -c 32 /dev/urandom | base64 | kes key import my-key -
`

var keyImportCommand = &command{
	name:  "import",
	usage: keyImportUsage,
	opts:  optConn,
	args:  argRule{min: 2, max: 2, what: "key name and key", names: 1},
	flags: func(fs *flag.FlagSet) runFunc {
		algorithm := "AES256"
		stringFlag(fs, &algorithm, "algorithm")
		return func(ctx context.Context, c *call) error {
			var alg kes.KeyAlgorithm
			if err := alg.UnmarshalText([]byte(algorithm)); err != nil {
				return c.usagef("invalid --algorithm %q: use AES256 or ChaCha20", algorithm)
			}
			name, encoded := c.args[0], c.args[1]
			if encoded == "-" {
				b, err := io.ReadAll(io.LimitReader(c.stdin, 4096))
				if err != nil {
					return fmt.Errorf("reading the key from stdin: %w", err)
				}
				encoded = strings.TrimSpace(string(b))
				clear(b)
			}
			key, err := base64.StdEncoding.DecodeString(encoded)
			if err != nil {
				return withHint(fmt.Errorf("failed to import %q: invalid key: %w", name, err), "the key must be 32 bytes in standard base64")
			}
			defer clear(key)
			s, err := c.connect()
			if err != nil {
				return err
			}
			if err := s.client.ImportKey(ctx, name, &kes.ImportKeyRequest{Key: key, Cipher: alg}); err != nil {
				return s.fail(err, "failed to import %q", name)
			}
			return nil
		}
	},
}

const keyInfoUsage = `Usage:
    kes key info [options] <name>

Describes a key: its name, algorithm, creation date and creator. For a
key that was rotated, also its newest version and every version with its
creation date and creator; for a key scheduled for deletion, when it was
scheduled, by whom, and when it is deleted. The commands info and
describe are the same.

Options:
    --json                   Print the description as JSON.
` + clientOptions + `
Examples:
    $ kes key info my-key
    $ kes key info my-key --json | jq -r .created_by
    $ kes key info my-key --json | jq -r '.version // 1'
`

// keyInfoJSON is the JSON of 'kes key info': the SDK's KeyInfo. Unlike
// upstream, the algorithm is also shown when it is AES256. The version
// fields and the deletion are only there for a rotated or scheduled key,
// as in the server's answer.
type keyInfoJSON struct {
	Name      string               `json:"name"`
	Algorithm string               `json:"algorithm,omitempty"`
	CreatedAt time.Time            `json:"created_at"`
	CreatedBy kes.Identity         `json:"created_by,omitempty"`
	Version   int                  `json:"version,omitempty"`
	Versions  []kes.KeyVersionInfo `json:"versions,omitempty"`
	Deletion  *kes.KeyDeletion     `json:"deletion,omitempty"`
}

// 'kes key describe' is 'kes key info' under the name of the server's
// route, which is also what the lifecycle docs call it.
var (
	keyInfoCommand     = describeKeyCommand("info")
	keyDescribeCommand = describeKeyCommand("describe")
)

// describeKeyCommand returns 'kes key info' under the name.
func describeKeyCommand(name string) *command {
	usage := strings.ReplaceAll(keyInfoUsage, "kes key info", "kes key "+name)
	return describeCommand(name, usage, "key name", "failed to describe key %q", (*kes.Client).DescribeKey, printKeyInfo)
}

// printKeyInfo prints the description of a key.
func printKeyInfo(c *call, info *kes.KeyInfo) error {
	if c.json {
		return c.printJSON(keyInfoJSON{
			Name:      info.Name,
			Algorithm: info.Algorithm.String(),
			CreatedAt: info.CreatedAt,
			CreatedBy: info.CreatedBy,
			Version:   info.Version,
			Versions:  info.Versions,
			Deletion:  info.Deletion,
		})
	}
	f := c.fields().
		add("Name", info.Name).
		add("Algorithm", info.Algorithm.String()).
		add("Date", dateTime(info.CreatedAt)).
		add("Owner", orNone(info.CreatedBy.String()))
	if info.Version > 0 {
		f.add("Version", strconv.Itoa(info.Version))
	}
	// One row per version: number, date and creator, in columns.
	width := 0
	for _, v := range info.Versions {
		width = max(width, len(strconv.Itoa(v.Version)))
	}
	for i, v := range info.Versions {
		label := ""
		if i == 0 {
			label = "Versions"
		}
		f.add(label, fmt.Sprintf("%*d  %s  %s", width, v.Version, dateTime(v.CreatedAt), orNone(v.CreatedBy.String())))
	}
	if d := info.Deletion; d != nil {
		scheduled := dateTime(d.ScheduledAt)
		if d.ScheduledBy != "" {
			scheduled += " by " + d.ScheduledBy.String()
		}
		f.add("Deletion", dateTime(d.DeleteAt)).add("Scheduled", scheduled)
	}
	f.print("")
	return nil
}

// keyNames is the argRule.names of a command whose one argument is what:
// 1 for a key name, else 0.
func keyNames(what string) int {
	if what == "key name" {
		return 1
	}
	return 0
}

// describeCommand returns a command that fetches the thing its one
// argument names (what: "key name") with get and prints it with print;
// failure describes the error of get.
func describeCommand[T any](name, usage, what, failure string, get func(*kes.Client, context.Context, string) (T, error), print func(c *call, v T) error) *command {
	return &command{
		name:  name,
		usage: usage,
		opts:  optConn | optJSON | optColor,
		args:  argRule{min: 1, max: 1, what: what, names: keyNames(what)},
		run: connected(func(ctx context.Context, c *call, s *session) error {
			v, err := get(s.client, ctx, c.args[0])
			if err != nil {
				return s.fail(err, failure, c.args[0])
			}
			return print(c, v)
		}),
	}
}

const keyLsUsage = `Usage:
    kes key ls [options] [<pattern>]

Lists the keys whose names match the pattern: a name prefix, optionally
ending in '*'. Without a pattern, all keys are listed.

Options:
    --json                   Print the names as a JSON array.
` + clientOptions + `
Examples:
    $ kes key ls
    $ kes key ls 'my-app-*'
    $ kes key ls --json | jq -r '.[]'
`

var keyLsCommand = listCommand(keyLsUsage, keyListing)

// listPattern returns the listing pattern for a command-line argument:
// "*" for none, and a prefix ending in '-' (which the server refuses as
// pattern) with '*' appended. Other prefixes are sent as they are: an
// upstream server takes a trailing '*' of a key pattern literally.
func listPattern(args []string) string {
	if len(args) == 0 || args[0] == "" {
		return "*"
	}
	if p := args[0]; strings.HasSuffix(p, "-") {
		return p + "*"
	}
	return args[0]
}

// listAll calls list and returns the names, never nil. The KES API has no
// way to ask for the page after a continuation (upstream's SDK passes it
// as the next prefix, which skips names), so a truncated listing is
// reported on stderr instead.
func listAll(e *env, what string, list func() ([]string, string, error)) ([]string, error) {
	names, next, err := list()
	if err != nil {
		return nil, err
	}
	if next != "" {
		fmt.Fprintf(e.stderr, "kes: warning: the server listed only the first %d %s; narrow the pattern to see the others (next: %s)\n", len(names), what, next)
	}
	if names == nil {
		names = []string{}
	}
	return names, nil
}

const keyRmUsage = `Usage:
    kes key rm [options] <name>...

Deletes each key, in order, and stops at the first error. A deleted key
cannot be recovered: whatever it encrypted cannot be decrypted anymore.

A server with a deletion window (config: deletion.window) only schedules
the key for deletion: it stops encrypting at once, still decrypts, and
is removed when the window ends, unless 'kes key restore' restores it.

Options:
` + connOptions + helpOption + `
Examples:
    $ kes key rm my-key
`

var keyRmCommand = perNameCommand("rm", keyRmUsage, "failed to remove key %q", (*kes.Client).DeleteKey)

const keyEncryptUsage = `Usage:
    kes key encrypt [options] <name> <message> [<context>]

Encrypts the message (the argument's text) with the key. The optional
context, in base64, is authenticated associated data that decryption
must repeat. On a terminal the ciphertext is printed as text, otherwise
as JSON: {"ciphertext":"<base64>"}.

Options:
    --json                   Print JSON on a terminal, too.
` + clientOptions + `
Examples:
    $ kes key encrypt my-key "Hello world"
    $ kes key encrypt my-key "Hello world" | jq -r .ciphertext
`

var keyEncryptCommand = valuesCommand("encrypt", keyEncryptUsage, "failed to encrypt message",
	argRule{min: 2, max: 3, what: "key name and message", base64: []string{2: "context"}, names: 1},
	func(ctx context.Context, c *call, s *session) ([]value, error) {
		ciphertext, err := s.client.Encrypt(ctx, c.args[0], []byte(c.args[1]), c.decoded[2])
		return []value{{"ciphertext", base64.StdEncoding.EncodeToString(ciphertext)}}, err
	})

// valuesCommand returns a command that sends one request with do and
// prints the named values it returns with printValues; failure describes
// the error of do.
func valuesCommand(name, usage, failure string, args argRule, do func(ctx context.Context, c *call, s *session) ([]value, error)) *command {
	return &command{
		name:  name,
		usage: usage,
		opts:  optConn | optJSON | optColor,
		args:  args,
		run: connected(func(ctx context.Context, c *call, s *session) error {
			values, err := do(ctx, c, s)
			if err != nil {
				return s.fail(err, "%s", failure)
			}
			return c.printValues(c.json, values)
		}),
	}
}

const keyDecryptUsage = `Usage:
    kes key decrypt [options] <name> <ciphertext> [<context>]

Decrypts a ciphertext, in base64, with the key. The context, in base64,
must be the one used to encrypt. On a terminal the plaintext (in base64)
is printed as text, otherwise as JSON: {"plaintext":"<base64>"}.

Options:
    --json                   Print JSON on a terminal, too.
` + clientOptions + `
Examples:
    $ kes key decrypt my-key "$CIPHERTEXT"
    $ kes key decrypt my-key "$CIPHERTEXT" | jq -r .plaintext | base64 -d
`

var keyDecryptCommand = valuesCommand("decrypt", keyDecryptUsage, "failed to decrypt ciphertext",
	argRule{min: 2, max: 3, what: "key name and ciphertext", base64: []string{1: "ciphertext", 2: "context"}, names: 1},
	func(ctx context.Context, c *call, s *session) ([]value, error) {
		plaintext, err := s.client.Decrypt(ctx, c.args[0], c.decoded[1], c.decoded[2])
		defer clear(plaintext)
		return []value{{"plaintext", base64.StdEncoding.EncodeToString(plaintext)}}, err
	})

const keyDEKUsage = `Usage:
    kes key dek [options] <name> [<context>]

Generates a data encryption key (DEK): 32 random bytes, in plaintext and
encrypted with the key. The context, in base64, is associated data that
decrypting the DEK must repeat. On a terminal both are printed as text,
otherwise as JSON: {"plaintext":"<base64>","ciphertext":"<base64>"}.
A key that was rotated adds the version that encrypted the DEK:
{...,"version":<n>}.

Options:
    --json                   Print JSON on a terminal, too.
` + clientOptions + `
Examples:
    $ kes key dek my-key
    $ kes key dek my-key "$(printf bucket/object | base64)"
`

var keyDEKCommand = valuesCommand("dek", keyDEKUsage, "failed to generate data encryption key",
	argRule{min: 1, max: 2, what: "key name", base64: []string{1: "context"}, names: 1},
	func(ctx context.Context, c *call, s *session) ([]value, error) {
		dek, err := s.client.GenerateKey(ctx, c.args[0], c.decoded[1])
		defer clear(dek.Plaintext)
		values := []value{
			{"plaintext", base64.StdEncoding.EncodeToString(dek.Plaintext)},
			{"ciphertext", base64.StdEncoding.EncodeToString(dek.Ciphertext)},
		}
		if dek.Version > 0 {
			values = append(values, value{"version", dek.Version})
		}
		return values, err
	})

// value is a named value that printValues prints: a string or a number.
type value struct {
	name string
	v    any
}

// printValues prints name/value pairs as upstream's encrypt, decrypt and
// dek do: on a terminal (and without --json) as a blank line and one
// "name: value" line each, values aligned; else as a JSON object with the
// names as keys, in order.
func (e *env) printValues(jsonOut bool, values []value) error {
	if jsonOut || !e.outTTY {
		var b strings.Builder
		b.WriteByte('{')
		for i, v := range values {
			if i > 0 {
				b.WriteByte(',')
			}
			k, _ := marshalJSON(v.name, false)
			s, _ := marshalJSON(v.v, false)
			b.Write(k)
			b.WriteByte(':')
			if jsonOut && e.outTTY {
				b.WriteByte(' ')
			}
			b.Write(s)
		}
		b.WriteByte('}')
		if e.outTTY {
			b.WriteByte('\n')
		}
		_, err := io.WriteString(e.stdout, b.String())
		return err
	}
	width := 0
	for _, v := range values {
		width = max(width, len(v.name))
	}
	label := e.style(sgrBold)
	var b strings.Builder
	b.WriteByte('\n')
	for _, v := range values {
		fmt.Fprintf(&b, "%s %s%v\n", label.wrap(v.name+":"), strings.Repeat(" ", width-len(v.name)), v.v)
	}
	_, err := io.WriteString(e.stdout, b.String())
	return err
}
