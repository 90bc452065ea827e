package cli

import (
	"context"
	"flag"

	"github.com/openkes/openkes/kes"
)

const lsUsage = `Usage:
    kes ls [options] [<prefix>]

Lists the keys, or with -i the identities, or with -p the policies, whose
names start with the prefix. Without a prefix, everything is listed.

Options:
    -i, --identity           List identities.
    -p, --policy             List policies.
    --json                   Print the names as a JSON array.
    --color <when>           Colour the output: auto, never or always.
` + connOptions + `    -h, --help               Print command line options.

Examples:
    $ kes ls
    $ kes ls my-app-
    $ kes ls -p
    $ kes ls -i --json
`

var lsCommand = &command{
	name:  "ls",
	usage: lsUsage,
	flags: func(fs *flag.FlagSet, e *env) runFunc {
		conn := addConnFlags(fs)
		var jsonOut, identities, policies bool
		boolFlag(fs, &jsonOut, "json")
		boolFlag(fs, &identities, "i", "identity")
		boolFlag(fs, &policies, "p", "policy")
		addColorFlag(fs, e)
		return func(ctx context.Context, e *env, args []string) error {
			if identities && policies {
				return usagef("ls", "'-i / --identity' and '-p / --policy' cannot be used together")
			}
			if err := argsBetween("ls", args, 0, 1, "prefix"); err != nil {
				return err
			}
			prefix := listPattern(args)
			s, err := conn.connect(e)
			if err != nil {
				return err
			}
			var (
				names        []string
				header, what string
			)
			switch {
			case identities:
				header, what = "Identity", "identities"
				names, err = listAll(e, what, func() ([]string, string, error) {
					ids, next, err := s.client.ListIdentities(ctx, prefix, 0)
					return identityStrings(ids), next, err
				})
			case policies:
				header, what = "Policy", "policies"
				names, err = listAll(e, what, func() ([]string, string, error) {
					return s.client.ListPolicies(ctx, prefix, 0)
				})
			default:
				header, what = "Key", "keys"
				names, err = listAll(e, what, func() ([]string, string, error) {
					return s.client.ListKeys(ctx, prefix, 0)
				})
			}
			if err != nil {
				return s.fail(err, "failed to list %s", what)
			}
			if jsonOut {
				return e.printJSON(names)
			}
			e.printList(header, names)
			return nil
		}
	},
}

// identityStrings converts identities to strings.
func identityStrings(ids []kes.Identity) []string {
	if ids == nil {
		return nil
	}
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = id.String()
	}
	return s
}
