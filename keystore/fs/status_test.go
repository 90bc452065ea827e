//go:build linux

package fs

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/openkes/openkes/keystore"
)

// statusChildEnv names the directory whose store status a re-executed
// test binary prints (see TestStatusUnreadable).
const statusChildEnv = "OPENKES_FS_STATUS_CHILD"

// TestStatusUnreadable checks that Status reports a directory or a key
// file that cannot be read as an error (not "reachable" and not
// unreachable), so that /v1/ready answers 502 instead of 200. Root may
// read everything, so as root the check runs in a child process with the
// uid of nobody.
func TestStatusUnreadable(t *testing.T) {
	if dir := os.Getenv(statusChildEnv); dir != "" {
		_, err := (&Store{dir: dir}).Status(context.Background())
		fmt.Printf("status-error=%v unreachable=%v\n", err, keystore.IsUnreachable(err))
		return
	}
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  string
	}{
		{"directory mode 000", func(t *testing.T, dir string) { chmod(t, dir, 0o000) }, "fs: cannot list keys: open "},
		{"key file mode 000", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, "my-key"), 0o000)
		}, "fs: cannot read keys: open "},
		{"readable", func(t *testing.T, dir string) { writeFile(t, filepath.Join(dir, "my-key"), 0o644) }, "<nil>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A parent the child (nobody) can enter; t.TempDir is 0700.
			parent, err := os.MkdirTemp("", "openkes-fs-status-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Chmod(filepath.Join(parent, "keys"), 0o700); os.RemoveAll(parent) })
			chmod(t, parent, 0o755)
			dir := filepath.Join(parent, "keys")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			tt.setup(t, dir)
			out := statusAs(t, parent, dir)
			if !strings.Contains(out, "status-error="+tt.want) || (tt.want != "<nil>" && !strings.Contains(out, "unreachable=false")) {
				t.Errorf("Status of %s: %q, want error %q (not unreachable)", tt.name, out, tt.want)
			}
		})
	}
}

// statusAs runs Status on dir in a child process, as nobody when the test
// runs as root, and returns what it printed. The child is a copy of the
// test binary in bin, which nobody can execute.
func statusAs(t *testing.T, bin, dir string) string {
	t.Helper()
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(bin, "fs.test")
	if err := os.WriteFile(exe, self, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestStatusUnreadable$")
	cmd.Env = append(os.Environ(), statusChildEnv+"="+dir)
	if os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	return string(out)
}

func chmod(t *testing.T, name string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(name, mode); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, name string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(name, []byte("value"), 0o600); err != nil {
		t.Fatal(err)
	}
	chmod(t, name, mode)
}
