//go:build !linux

package memlock

// Lock is not supported on this platform: it reports false.
func Lock() bool { return false }
