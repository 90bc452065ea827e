package cli

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/openkes/openkes/kes"
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
` + clientOptions + `
Examples:
    $ kes policy info my-app
    $ kes policy info my-app --json
`

var policyInfoCommand = describeCommand("info", policyInfoUsage, "policy name", "failed to describe policy %q", (*kes.Client).DescribePolicy,
	func(c *call, info *kes.PolicyInfo) error {
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
	})

const policyLsUsage = `Usage:
    kes policy ls [options] [<pattern>]

Lists the policies whose names match the pattern: a name prefix,
optionally ending in '*'. Without a pattern, all policies are listed.

Options:
    --json                   Print the names as a JSON array.
` + clientOptions + `
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
` + clientOptions + `
Examples:
    $ kes policy show my-app
    $ kes policy show my-app | jq -r '.allow | keys[]'
`

var policyShowCommand = describeCommand("show", policyShowUsage, "policy name", "failed to show policy %q", (*kes.Client).GetPolicy,
	func(c *call, policy *kes.Policy) error {
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
	})

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
