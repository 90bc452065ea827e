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
` + clientOptions + `
Examples:
    $ kes ls
    $ kes ls my-app-
    $ kes ls -p
    $ kes ls -i --json
`

var lsCommand = &command{
	name:  "ls",
	usage: lsUsage,
	opts:  optConn | optJSON | optColor,
	args:  argRule{max: 1, what: "prefix", deferred: true},
	flags: func(fs *flag.FlagSet) runFunc {
		var identities, policies bool
		boolFlag(fs, &identities, "i", "identity")
		boolFlag(fs, &policies, "p", "policy")
		return func(ctx context.Context, c *call) error {
			if identities && policies {
				return c.usagef("'-i / --identity' and '-p / --policy' cannot be used together")
			}
			if err := c.checkArgs(); err != nil {
				return err
			}
			prefix := listPattern(c.args)
			s, err := c.connect()
			if err != nil {
				return err
			}
			l := keyListing
			switch {
			case identities:
				l = identityListing
			case policies:
				l = policyListing
			}
			return c.printNames(ctx, s, l, prefix)
		}
	},
}

// listing is what an ls command lists: what names the listed things in
// errors ("keys"), header is the table header ("Key").
type listing struct {
	what, header string
	list         func(ctx context.Context, s *session, pattern string) ([]string, string, error)
}

var (
	keyListing = listing{"keys", "Key", func(ctx context.Context, s *session, pattern string) ([]string, string, error) {
		return s.client.ListKeys(ctx, pattern, 0)
	}}
	policyListing = listing{"policies", "Policy", func(ctx context.Context, s *session, pattern string) ([]string, string, error) {
		return s.client.ListPolicies(ctx, pattern, 0)
	}}
	identityListing = listing{"identities", "Identity", func(ctx context.Context, s *session, pattern string) ([]string, string, error) {
		ids, next, err := s.client.ListIdentities(ctx, pattern, 0)
		return identityStrings(ids), next, err
	}}
)

// listCommand returns an "ls" command: it lists the names that match an
// optional pattern.
func listCommand(usage string, l listing) *command {
	return &command{
		name:  "ls",
		usage: usage,
		opts:  optConn | optJSON | optColor,
		args:  argRule{max: 1, what: "pattern"},
		run: connected(func(ctx context.Context, c *call, s *session) error {
			return c.printNames(ctx, s, l, listPattern(c.args))
		}),
	}
}

// printNames prints the names that match pattern: as a JSON array with
// --json, else as a table.
func (c *call) printNames(ctx context.Context, s *session, l listing, pattern string) error {
	names, err := listAll(c.env, l.what, func() ([]string, string, error) {
		return l.list(ctx, s, pattern)
	})
	if err != nil {
		return s.fail(err, "failed to list %s", l.what)
	}
	if c.json {
		return c.printJSON(names)
	}
	c.printList(l.header, names)
	return nil
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
