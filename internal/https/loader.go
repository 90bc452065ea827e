package https

import (
	"crypto/tls"
	"fmt"
	"os"
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

	certFile, keyFile, password string
	load                        func(certFile, keyFile, password string) (*tls.Certificate, error)

	cert      atomic.Pointer[tls.Certificate]
	lastCheck atomic.Int64 // time.Now().UnixNano() of the last check

	mu    sync.Mutex // serialises loads and protects stamp
	stamp [2]fileStamp

	now func() time.Time // time.Now; replaced in tests
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
	l := &CertificateLoader{certFile: certFile, keyFile: keyFile, password: password, load: load, now: time.Now}
	if err := l.Reload(); err != nil {
		return nil, err
	}
	return l, nil
}

// Certificate returns the certificate being served.
func (l *CertificateLoader) Certificate() *tls.Certificate { return l.cert.Load() }

// GetCertificate returns the certificate being served. It matches the
// signature of [tls.Config.GetCertificate] and never fails: after a failed
// reload it keeps returning the previous certificate.
func (l *CertificateLoader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	l.maybeReload()
	return l.cert.Load(), nil
}

// GetClientCertificate is GetCertificate with the signature of
// [tls.Config.GetClientCertificate].
func (l *CertificateLoader) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return l.GetCertificate(nil)
}

// Reload loads the certificate files now, whether they changed or not.
// On error the certificate being served stays in place and the error is
// returned.
func (l *CertificateLoader) Reload() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.reloadLocked()
}

func (l *CertificateLoader) reloadLocked() error {
	// Stat before reading: if a file changes while being read, the next
	// check sees a newer stamp and reads it again.
	stamp := [2]fileStamp{stampOf(l.certFile), stampOf(l.keyFile)}
	l.stamp = stamp
	l.lastCheck.Store(l.now().UnixNano())
	cert, err := l.load(l.certFile, l.keyFile, l.password)
	if err != nil {
		return err
	}
	l.cert.Store(cert)
	return nil
}

// maybeReload checks the files if the check interval has passed and
// reloads them if they changed.
func (l *CertificateLoader) maybeReload() {
	interval := l.CheckInterval
	switch {
	case interval < 0:
		return
	case interval == 0:
		interval = DefaultCheckInterval
	}
	last := l.lastCheck.Load()
	now := l.now().UnixNano()
	if now-last < int64(interval) {
		return
	}
	// Only the handshake that wins the swap checks; the others keep
	// serving the cached certificate without waiting.
	if !l.lastCheck.CompareAndSwap(last, now) {
		return
	}
	if !l.mu.TryLock() {
		return // a Reload is in progress
	}
	defer l.mu.Unlock()
	if l.stamp == [2]fileStamp{stampOf(l.certFile), stampOf(l.keyFile)} {
		return
	}
	if err := l.reloadLocked(); err != nil && l.OnError != nil {
		l.OnError(fmt.Errorf("https: keeping the previous certificate: %w", err))
	}
}
