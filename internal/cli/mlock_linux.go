package cli

import (
	"os"

	"golang.org/x/sys/unix"
)

// mlock locks the process memory so that keys are never swapped to disk.
// It only does so when the process may lock unlimited memory (root or an
// unlimited RLIMIT_MEMLOCK): with a finite limit, MCL_FUTURE would make
// later allocations of the Go runtime fail.
func mlock() bool {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &lim); err != nil {
		return false
	}
	if os.Geteuid() != 0 && lim.Cur != unix.RLIM_INFINITY {
		return false
	}
	return unix.Mlockall(unix.MCL_CURRENT|unix.MCL_FUTURE) == nil
}
