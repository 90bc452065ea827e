//go:build !linux

package etcdtest

import "syscall"

// sysProcAttr puts etcd into its own process group where the platform
// supports it; see sysproc_linux.go.
func sysProcAttr() *syscall.SysProcAttr { return nil }
