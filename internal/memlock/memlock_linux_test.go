package memlock

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// status returns a "<field>: <n> kB" value of /proc/self/status in KiB.
func status(t *testing.T, field string) int {
	t.Helper()
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(raw)) {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatalf("%q: %v", line, err)
			}
			return n
		}
	}
	t.Fatalf("no %s in /proc/self/status", field)
	return 0
}

// TestLock locks this test process as the server locks itself: it must
// lock exactly when the process may lock unlimited memory, and then the
// pages it touched are locked while memory it only mapped is not made
// resident (MCL_ONFAULT).
func TestLock(t *testing.T) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &lim); err != nil {
		t.Fatal(err)
	}
	want := os.Geteuid() == 0 || lim.Cur == unix.RLIM_INFINITY
	locked, onFault := lock()
	if locked != want {
		t.Fatalf("locked = %v, want %v (euid %d, RLIMIT_MEMLOCK %d)", locked, want, os.Geteuid(), lim.Cur)
	}
	if !locked {
		return // nothing more to check without the right to lock
	}
	if got := status(t, "VmLck"); got == 0 {
		t.Errorf("VmLck = 0 kB after locking")
	}
	if !onFault {
		t.Logf("kernel without MCL_ONFAULT: every mapped page is locked")
		return
	}
	// A large allocation gets fresh, untouched pages from the kernel.
	before := status(t, "VmRSS")
	big := make([]byte, 256<<20)
	after := status(t, "VmRSS")
	runtime.KeepAlive(big)
	if after-before > 64<<10 {
		t.Errorf("VmRSS grew by %d KiB for 256 MiB never touched, want pages locked on fault only", after-before)
	}
	before = after
	for i := range big[:64<<20] {
		big[i] = 1
	}
	if after := status(t, "VmRSS"); after-before < 60<<10 {
		t.Errorf("VmRSS grew by %d KiB after touching 64 MiB, want about 65536", after-before)
	}
}
