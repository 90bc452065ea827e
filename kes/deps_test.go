package kes

import (
	"os/exec"
	"strings"
	"testing"
)

// TestStdlibOnly proves that the SDK imports nothing but the standard
// library, so that programs embedding it pull in no dependencies.
func TestStdlibOnly(t *testing.T) {
	t.Parallel()
	gobin, err := exec.LookPath("go") // go test puts its own go first in PATH
	if err != nil {
		t.Fatalf("go command not found: %v", err)
	}
	self, err := exec.CommandContext(t.Context(), gobin, "list", "-f", "{{.ImportPath}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	pkg := strings.TrimSpace(string(self))
	out, err := exec.CommandContext(t.Context(), gobin, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep != pkg && !strings.HasPrefix(dep, pkg+"/") {
			t.Errorf("%s imports %s, which is not in the standard library", pkg, dep)
		}
	}
}
