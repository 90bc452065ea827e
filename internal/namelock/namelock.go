// Package namelock provides a set of mutexes by name that exist only
// while in use: key stores without an atomic create (Vault K/V v1, Azure
// Key Vault) serialise creates of one name within a process with it.
package namelock

import "sync"

// Set is a set of mutexes by name. The zero value is ready to use; a Set
// must not be copied after first use.
type Set struct {
	mu sync.Mutex
	m  map[string]*entry
}

type entry struct {
	mu    sync.Mutex
	users int
}

// Lock locks name and returns the function that unlocks it.
func (k *Set) Lock(name string) (unlock func()) {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*entry{}
	}
	e := k.m[name]
	if e == nil {
		e = &entry{}
		k.m[name] = e
	}
	e.users++
	k.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		k.mu.Lock()
		if e.users--; e.users == 0 {
			delete(k.m, name)
		}
		k.mu.Unlock()
	}
}
