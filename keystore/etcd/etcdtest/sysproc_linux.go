package etcdtest

import "syscall"

// sysProcAttr puts etcd into its own process group, so that a Ctrl-C to
// `go test` does not reach it before the cleanup can stop it in order,
// and has the kernel kill it if the test binary dies without cleaning
// up (a panic or a test timeout), so no etcd outlives its test.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
