package https

import (
	"crypto/x509"
	"os"
	"path/filepath"
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

	reloader[x509.CertPool]
}

// NewCAPoolLoader loads the pool and returns a loader serving it. It
// fails as LoadCertPool does.
func NewCAPoolLoader(path string) (*CAPoolLoader, error) {
	l := &CAPoolLoader{reloader: reloader[x509.CertPool]{
		what:   "CAs of tls.ca",
		stamps: func() []namedStamp { return stampsOf(path) },
		load:   func() (*x509.CertPool, error) { return LoadCertPool(path) },
		now:    time.Now,
	}}
	if err := l.Reload(); err != nil {
		return nil, err
	}
	return l, nil
}

// Pool returns the pool being served. It never returns nil.
func (l *CAPoolLoader) Pool() *x509.CertPool {
	return l.current(l.CheckInterval, l.OnError)
}

// Reload loads the CAs now. On error the pool being served stays in place.
func (l *CAPoolLoader) Reload() error { return l.reload() }

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
