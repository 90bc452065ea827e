package https

import (
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// CAPoolLoader serves the pool [LoadCertPool] makes of a CA file or
// directory and loads it again when the file, or a file in the directory,
// changes, so that the CAs of client certificates (tls.ca) can be rotated
// with the server certificate, without a restart.
//
// As with [CertificateLoader], [CAPoolLoader.Pool] returns a cached pool;
// at most once per CheckInterval one call compares the size and
// modification time of the files with those of the last load. A broken
// new CA file keeps the previous pool in use; the error goes to OnError.
type CAPoolLoader struct {
	// CheckInterval: see CertificateLoader.CheckInterval.
	CheckInterval time.Duration
	// OnError, if not nil, is called with the error of every failed
	// reload triggered by Pool.
	OnError func(error)

	path      string
	pool      atomic.Pointer[x509.CertPool]
	lastCheck atomic.Int64
	mu        sync.Mutex // serialises loads and protects stamp
	stamp     []namedStamp
	now       func() time.Time
}

type namedStamp struct {
	name string
	fileStamp
}

// NewCAPoolLoader loads the pool and returns a loader serving it. It
// fails as LoadCertPool does.
func NewCAPoolLoader(path string) (*CAPoolLoader, error) {
	l := &CAPoolLoader{path: path, now: time.Now}
	if err := l.Reload(); err != nil {
		return nil, err
	}
	return l, nil
}

// Pool returns the pool being served. It never returns nil.
func (l *CAPoolLoader) Pool() *x509.CertPool {
	l.maybeReload()
	return l.pool.Load()
}

// Reload loads the CAs now. On error the pool being served stays in place.
func (l *CAPoolLoader) Reload() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.reloadLocked()
}

func (l *CAPoolLoader) reloadLocked() error {
	l.stamp = stampsOf(l.path)
	l.lastCheck.Store(l.now().UnixNano())
	pool, err := LoadCertPool(l.path)
	if err != nil {
		return err
	}
	l.pool.Store(pool)
	return nil
}

func (l *CAPoolLoader) maybeReload() {
	interval := l.CheckInterval
	switch {
	case interval < 0:
		return
	case interval == 0:
		interval = DefaultCheckInterval
	}
	last := l.lastCheck.Load()
	now := l.now().UnixNano()
	if now-last < int64(interval) || !l.lastCheck.CompareAndSwap(last, now) {
		return
	}
	if !l.mu.TryLock() {
		return
	}
	defer l.mu.Unlock()
	if slices.Equal(l.stamp, stampsOf(l.path)) {
		return
	}
	if err := l.reloadLocked(); err != nil && l.OnError != nil {
		l.OnError(fmt.Errorf("https: keeping the previous CAs of tls.ca: %w", err))
	}
}

// stampsOf returns the stamps of path and, for a directory, of the
// files in it (following links, as LoadCAs does).
func stampsOf(path string) []namedStamp {
	stamps := []namedStamp{{path, stampOf(path)}}
	entries, err := os.ReadDir(path)
	if err != nil {
		return stamps
	}
	for _, e := range entries {
		name := filepath.Join(path, e.Name())
		stamps = append(stamps, namedStamp{name, stampOf(name)})
	}
	return stamps
}
