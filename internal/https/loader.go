package https

import (
	"crypto/tls"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultCheckInterval is how often a [CertificateLoader] looks at the
// certificate files, at most, when no other interval is set.
const DefaultCheckInterval = 5 * time.Second

// CertificateLoader serves a certificate loaded with [LoadCertificate] and
// loads it again when the files change, so that a certificate can be
// rotated by replacing the files, without restarting the server.
//
// The hot path, [CertificateLoader.GetCertificate], returns a cached
// pointer. At most once per CheckInterval one handshake also compares the
// size and modification time of both files with those of the last load
// and, if they differ, loads the files again. A broken new certificate or
// key (for instance a certificate written before its key) does not replace
// the certificate being served: the error goes to OnError and the files
// are tried again once they change again.
//
// A CertificateLoader is safe for concurrent use. Its exported fields must
// be set before it is used concurrently and not changed afterwards.
type CertificateLoader struct {
	// CheckInterval is the minimum time between two checks of the files
	// by GetCertificate. Zero means DefaultCheckInterval; a negative value
	// disables the checks, so only Reload loads new files.
	CheckInterval time.Duration

	// OnError, if not nil, is called with the error of every failed
	// reload triggered by GetCertificate. Errors of Reload are returned
	// to its caller instead.
	OnError func(error)

	reloader[tls.Certificate]
}

// NewCertificateLoader loads the certificate as [LoadCertificate] does and
// returns a loader serving it. It fails if the certificate cannot be
// loaded.
func NewCertificateLoader(certFile, keyFile, password string) (*CertificateLoader, error) {
	return newLoader(certFile, keyFile, password, LoadCertificate)
}

// NewClientCertificateLoader is NewCertificateLoader for a client
// certificate, which need not name a DNS or IP SAN. Serve it with
// [CertificateLoader.GetClientCertificate].
func NewClientCertificateLoader(certFile, keyFile, password string) (*CertificateLoader, error) {
	return newLoader(certFile, keyFile, password, loadKeyPair)
}

func newLoader(certFile, keyFile, password string, load func(string, string, string) (*tls.Certificate, error)) (*CertificateLoader, error) {
	l := &CertificateLoader{reloader: reloader[tls.Certificate]{
		what: "certificate",
		stamps: func() []namedStamp {
			return []namedStamp{{certFile, stampOf(certFile)}, {keyFile, stampOf(keyFile)}}
		},
		load: func() (*tls.Certificate, error) { return load(certFile, keyFile, password) },
		now:  time.Now,
	}}
	if err := l.Reload(); err != nil {
		return nil, err
	}
	return l, nil
}

// Certificate returns the certificate being served.
func (l *CertificateLoader) Certificate() *tls.Certificate { return l.val.Load() }

// GetCertificate returns the certificate being served. It matches the
// signature of [tls.Config.GetCertificate] and never fails: after a failed
// reload it keeps returning the previous certificate.
func (l *CertificateLoader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return l.current(l.CheckInterval, l.OnError), nil
}

// GetClientCertificate is GetCertificate with the signature of
// [tls.Config.GetClientCertificate].
func (l *CertificateLoader) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return l.GetCertificate(nil)
}

// Reload loads the certificate files now, whether they changed or not.
// On error the certificate being served stays in place and the error is
// returned.
func (l *CertificateLoader) Reload() error { return l.reload() }

// reloader is what CertificateLoader and CAPoolLoader share: it serves
// the value load returned last and, at most once per check interval,
// loads it again if the stamps of its files changed.
type reloader[T any] struct {
	what   string              // what a failed reload keeps, for OnError
	stamps func() []namedStamp // the stamps of the files, in a fixed order
	load   func() (*T, error)

	val       atomic.Pointer[T]
	lastCheck atomic.Int64 // time.Now().UnixNano() of the last check

	mu    sync.Mutex // serialises loads and protects stamp
	stamp []namedStamp

	now func() time.Time // time.Now; replaced in tests
}

// namedStamp is the stamp of one file.
type namedStamp struct {
	name string
	fileStamp
}

// fileStamp is what is compared to notice that a file changed.
type fileStamp struct {
	size    int64
	modTime int64 // UnixNano
	ok      bool  // the file could be stat'ed
}

func stampOf(name string) fileStamp {
	fi, err := os.Stat(name)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{size: fi.Size(), modTime: fi.ModTime().UnixNano(), ok: true}
}

// reload loads the files now. On error the value being served stays in
// place.
func (r *reloader[T]) reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reloadLocked()
}

func (r *reloader[T]) reloadLocked() error {
	// Stat before reading: if a file changes while being read, the next
	// check sees a newer stamp and reads it again.
	r.stamp = r.stamps()
	r.lastCheck.Store(r.now().UnixNano())
	v, err := r.load()
	if err != nil {
		return err
	}
	r.val.Store(v)
	return nil
}

// current returns the value being served, after checking the files if
// the check interval (zero: DefaultCheckInterval; negative: never) has
// passed and reloading them if they changed. The error of a failed
// reload goes to onError, if not nil.
func (r *reloader[T]) current(interval time.Duration, onError func(error)) *T {
	r.maybeReload(interval, onError)
	return r.val.Load()
}

func (r *reloader[T]) maybeReload(interval time.Duration, onError func(error)) {
	switch {
	case interval < 0:
		return
	case interval == 0:
		interval = DefaultCheckInterval
	}
	last := r.lastCheck.Load()
	now := r.now().UnixNano()
	if now-last < int64(interval) {
		return
	}
	// Only the caller that wins the swap checks; the others keep
	// serving the cached value without waiting.
	if !r.lastCheck.CompareAndSwap(last, now) {
		return
	}
	if !r.mu.TryLock() {
		return // a Reload is in progress
	}
	defer r.mu.Unlock()
	if slices.Equal(r.stamp, r.stamps()) {
		return
	}
	if err := r.reloadLocked(); err != nil && onError != nil {
		onError(fmt.Errorf("https: keeping the previous %s: %w", r.what, err))
	}
}
