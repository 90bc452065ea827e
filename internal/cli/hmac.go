package cli

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
)

const keyHMACUsage = `Usage:
    kes key hmac [options] <name> <message>

Computes the HMAC-SHA-256 of the message with the key's HMAC key. The
message is taken as it is written; '-' reads it from standard input
(at most 1 MB). On a terminal the HMAC (in base64) is printed as text,
otherwise as JSON: {"hmac":"<base64>"}. Keys imported or created before
HMACs existed have no HMAC key: the server answers 409.

Options:
    --json                   Print JSON on a terminal, too.
` + clientOptions + `
Examples:
    $ kes key hmac my-key "hello world"
    $ kes key hmac my-key - < file.bin
`

// maxHMACMessage is the largest message kes key hmac sends: the server's
// body limit is 1 MB including the JSON and base64 overhead.
const maxHMACMessage = 700 << 10

var keyHMACCommand = &command{
	name:  "hmac",
	usage: keyHMACUsage,
	opts:  optConn | optJSON | optColor,
	args:  argRule{min: 2, max: 2, what: "key name and message", names: 1},
	run: func(ctx context.Context, c *call) error {
		msg := []byte(c.args[1])
		if c.args[1] == "-" {
			b, err := io.ReadAll(io.LimitReader(c.stdin, maxHMACMessage+1))
			if err != nil {
				return fmt.Errorf("reading the message from standard input: %w", err)
			}
			if len(b) > maxHMACMessage {
				return fmt.Errorf("the message on standard input is longer than %d bytes", maxHMACMessage)
			}
			msg = b
		}
		s, err := c.connect()
		if err != nil {
			return err
		}
		sum, err := s.client.HMAC(ctx, c.args[0], msg)
		if err != nil {
			return s.fail(err, "failed to compute HMAC")
		}
		return c.printValues(c.json, []value{{"hmac", base64.StdEncoding.EncodeToString(sum)}})
	},
}
