package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/openkes/openkes/server"
)

// TestVersionStamp checks that `kes --version` shows the version and
// commit a build was stamped with (see README, "Building"). Not parallel:
// it sets the package variables of server.
func TestVersionStamp(t *testing.T) {
	oldV, oldC := server.Version, server.Commit
	t.Cleanup(func() { server.Version, server.Commit = oldV, oldC })
	server.Version, server.Commit = "v1.2.3-test", "c0ffee"
	var stdout, stderr bytes.Buffer
	if code := Run(context.Background(), []string{"--version"}, strings.NewReader(""), &stdout, &stderr); code != 0 {
		t.Fatalf("kes --version: exit %d, stderr %q", code, stderr.String())
	}
	if want := "Version    v1.2.3-test\nCommit     c0ffee\n"; !strings.HasPrefix(stdout.String(), want) {
		t.Errorf("kes --version printed %q, want it to start with %q", stdout.String(), want)
	}
}
