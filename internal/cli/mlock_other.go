//go:build !linux

package cli

// mlock is not supported on this platform.
func mlock() bool { return false }
