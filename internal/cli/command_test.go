package cli

import (
	"strings"
	"testing"
)

// TestCommandPaths checks that the path the tree derives for every
// command is the one its usage text shows, so that usage errors point to
// the right help.
func TestCommandPaths(t *testing.T) {
	t.Parallel()
	var walk func(c *command)
	walk = func(c *command) {
		for _, sub := range c.subs {
			path := sub.path()
			if want := "\n    kes " + path + " "; !strings.Contains(sub.usage, want) {
				t.Errorf("usage of %q does not show %q", path, strings.TrimSpace(want))
			}
			if got, want := sub.cmdline(), "kes "+path; got != want {
				t.Errorf("cmdline() = %q, want %q", got, want)
			}
			walk(sub)
		}
	}
	walk(root)
	if got := root.cmdline(); got != "kes" {
		t.Errorf("root cmdline() = %q, want %q", got, "kes")
	}
}

// TestArgRule checks the argument count and base64 checks of the tree.
func TestArgRule(t *testing.T) {
	t.Parallel()
	cmd := &command{name: "test", args: argRule{min: 1, max: 2, what: "name", base64: []string{1: "context"}}}
	root := &command{subs: []*command{cmd}}
	root.link()
	tests := []struct {
		name    string
		args    []string
		want    string // error, "" for none
		decoded string
	}{
		{name: "missing", args: nil, want: "missing name. See 'kes test --help'"},
		{name: "too many", args: []string{"a", "Yg==", "c"}, want: "too many arguments. See 'kes test --help'"},
		{name: "not base64", args: []string{"a", "!"}, want: "invalid context: illegal base64 data at input byte 0"},
		{name: "base64", args: []string{"a", "Yg=="}, decoded: "b"},
		{name: "optional base64", args: []string{"a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := &call{cmd: cmd, args: tt.args}
			err := c.checkArgs()
			switch {
			case tt.want != "" && (err == nil || err.Error() != tt.want):
				t.Fatalf("checkArgs() = %v, want %q", err, tt.want)
			case tt.want == "" && err != nil:
				t.Fatalf("checkArgs() = %v, want nil", err)
			case tt.want == "" && string(c.decoded[1]) != tt.decoded:
				t.Errorf("decoded[1] = %q, want %q", c.decoded[1], tt.decoded)
			}
		})
	}
}
