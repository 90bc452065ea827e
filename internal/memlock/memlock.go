// Package memlock locks the memory of the process so that key material
// (cached keys, plaintext data keys in request and response buffers) is
// never written to a swap device. See docs/production.md, "Memory
// locking".
package memlock
