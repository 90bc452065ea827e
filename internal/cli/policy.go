package cli

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

const policyUsage = `Usage:
    kes policy <command> [options] [arguments]

Policies are defined in the server's configuration file. These commands
show them.

Commands:
    info                     Describe a policy.
    ls                       List policies.
    show                     Show the rules of a policy.

Options:
    -h, --help               Print command line options.

Examples:
    $ kes policy ls
    $ kes policy show my-app
`

var policyCommand = &command{
	name:  "policy",
	usage: policyUsage,
	subs:  []*command{policyInfoCommand, policyLsCommand, policyShowCommand},
}

const policyInfoUsage = `Usage:
    kes policy info [options] <name>

Describes a policy: its name, creation date and creator.

Options:
    --json                   Print the description as JSON.
    --color <when>           Colour the output: auto, never or always.
` + connOptions + `    -h, --help               Print command line options.

Examples:
    $ kes policy info my-app
    $ kes policy info my-app --json
`

var policyInfoCommand = &command{
	name:  "info",
	usage: policyInfoUsage,
	opts:  optConn | optJSON | optColor,
	args:  argRule{min: 1, max: 1, what: "policy name"},
	run: connected(func(ctx context.Context, c *call, s *session) error {
		info, err := s.client.DescribePolicy(ctx, c.args[0])
		if err != nil {
			return s.fail(err, "failed to describe policy %q", c.args[0])
		}
		if info.Name == "" {
			info.Name = c.args[0]
		}
		if c.json {
			return c.printJSON(info)
		}
		c.fields().
			add("Name", info.Name).
			add("Date", dateTime(info.CreatedAt)).
			add("Created by", orNone(info.CreatedBy.String())).
			print("")
		return nil
	}),
}

const policyLsUsage = `Usage:
    kes policy ls [options] [<pattern>]

Lists the policies whose names match the pattern: a name prefix,
optionally ending in '*'. Without a pattern, all policies are listed.

Options:
    --json                   Print the names as a JSON array.
    --color <when>           Colour the output: auto, never or always.
` + connOptions + `    -h, --help               Print command line options.

Examples:
    $ kes policy ls
    $ kes policy ls 'my-*' --json
`

var policyLsCommand = listCommand(policyLsUsage, policyListing)

const policyShowUsage = `Usage:
    kes policy show [options] <name>

Shows the allow and deny rules of a policy. On a terminal they are
printed as text, otherwise as JSON:
{"allow":{"<pattern>":{},...},"deny":{...},"created_at":"...","created_by":"..."}

Options:
    --json                   Print JSON on a terminal, too.
    --color <when>           Colour the output: auto, never or always.
` + connOptions + `    -h, --help               Print command line options.

Examples:
    $ kes policy show my-app
    $ kes policy show my-app | jq -r '.allow | keys[]'
`

var policyShowCommand = &command{
	name:  "show",
	usage: policyShowUsage,
	opts:  optConn | optJSON | optColor,
	args:  argRule{min: 1, max: 1, what: "policy name"},
	run: connected(func(ctx context.Context, c *call, s *session) error {
		policy, err := s.client.GetPolicy(ctx, c.args[0])
		if err != nil {
			return s.fail(err, "failed to show policy %q", c.args[0])
		}
		if c.json || !c.outTTY {
			return c.printJSON(policy)
		}
		var b strings.Builder
		c.writeRules(&b, "", policy.Allow, policy.Deny)
		b.WriteByte('\n')
		io.WriteString(c.stdout, b.String())
		c.fields().
			add("Created at:", dateTime(policy.CreatedAt)).
			add("Created by:", orNone(policy.CreatedBy.String())).
			print("")
		return nil
	}),
}

// writeRules writes the allow and deny rules, sorted, each under its
// heading, indented by indent.
func (e *env) writeRules(b *strings.Builder, indent string, allow, deny map[string]struct{}) {
	heading := e.style(sgrBold)
	for _, set := range []struct {
		name  string
		rules map[string]struct{}
		color style
	}{
		{"Allow:", allow, e.style(sgrGreen)},
		{"Deny:", deny, e.style(sgrRed)},
	} {
		fmt.Fprintf(b, "%s%s\n", indent, heading.wrap(set.name))
		if len(set.rules) == 0 {
			fmt.Fprintf(b, "%s  (none)\n", indent)
		}
		for _, r := range slices.Sorted(maps.Keys(set.rules)) {
			fmt.Fprintf(b, "%s  %s %s\n", indent, set.color.wrap("·"), r)
		}
	}
}
