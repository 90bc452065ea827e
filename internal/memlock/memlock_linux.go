package memlock

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// Lock locks the pages of the process as they are touched, now and in
// the future (mlockall with MCL_CURRENT|MCL_FUTURE|MCL_ONFAULT), and
// reports whether it did. On kernels without MCL_ONFAULT (before Linux
// 4.4, EINVAL) it locks every mapped page instead (MCL_CURRENT|MCL_FUTURE),
// which makes all memory the Go runtime maps resident.
//
// It only locks when the process may lock unlimited memory (root or an
// unlimited RLIMIT_MEMLOCK): with a finite limit, locking future pages
// would make later allocations of the Go runtime fail once the limit is
// reached.
func Lock() bool {
	locked, _ := lock()
	return locked
}

// lock is Lock; onFault reports whether the pages are locked as they are
// touched (MCL_ONFAULT) rather than all at once.
func lock() (locked, onFault bool) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &lim); err != nil {
		return false, false
	}
	if os.Geteuid() != 0 && lim.Cur != unix.RLIM_INFINITY {
		return false, false
	}
	err := unix.Mlockall(unix.MCL_CURRENT | unix.MCL_FUTURE | unix.MCL_ONFAULT)
	if err == nil {
		return true, true
	}
	if errors.Is(err, unix.EINVAL) {
		return unix.Mlockall(unix.MCL_CURRENT|unix.MCL_FUTURE) == nil, false
	}
	return false, false
}
