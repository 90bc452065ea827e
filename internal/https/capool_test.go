package https

import (
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/openkes/openkes/internal/testpki"
)

func TestCAPoolLoader(t *testing.T) {
	t.Parallel()
	for _, dir := range []bool{false, true} {
		name := "file"
		if dir {
			name = "directory"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			path := filepath.Join(root, "ca.pem")
			file := path
			if dir {
				path = filepath.Join(root, "cas")
				if err := os.Mkdir(path, 0o700); err != nil {
					t.Fatal(err)
				}
				file = filepath.Join(path, "ca.pem")
			}
			oldCA, newCA := testpki.NewCA(t), testpki.NewCA(t)
			oldLeaf, newLeaf := oldCA.Issue(t, testpki.Options{}), newCA.Issue(t, testpki.Options{})
			if err := os.WriteFile(file, oldCA.CertPEM(), 0o600); err != nil {
				t.Fatal(err)
			}
			l, err := NewCAPoolLoader(path)
			if err != nil {
				t.Fatal(err)
			}
			now := time.Now()
			l.now = func() time.Time { return now }
			var errs []error
			l.OnError = func(err error) { errs = append(errs, err) }

			verifies := func(leaf *testpki.Cert) bool {
				_, err := leaf.X509.Verify(x509VerifyOptions(l))
				return err == nil
			}
			if !verifies(oldLeaf) || verifies(newLeaf) {
				t.Fatal("initial pool: want the old CA only")
			}

			// Rotate: write the new CA. Nothing changes before the check
			// interval has passed.
			if err := os.WriteFile(file, append(oldCA.CertPEM(), newCA.CertPEM()...), 0o600); err != nil {
				t.Fatal(err)
			}
			bumpMtime(t, file)
			if verifies(newLeaf) {
				t.Fatal("pool reloaded before the check interval")
			}
			now = now.Add(DefaultCheckInterval)
			if !verifies(newLeaf) || !verifies(oldLeaf) {
				t.Fatal("after the rotation: want both CAs")
			}

			// A broken file keeps the pool and reports the error.
			if err := os.WriteFile(file, []byte("not a certificate"), 0o600); err != nil {
				t.Fatal(err)
			}
			bumpMtime(t, file)
			now = now.Add(DefaultCheckInterval)
			if !verifies(newLeaf) {
				t.Fatal("a broken CA file replaced the pool")
			}
			if len(errs) != 1 {
				t.Fatalf("OnError called %d times, want 1: %v", len(errs), errors.Join(errs...))
			}
		})
	}
}

// bumpMtime moves the modification time of name forward, so that a
// rewrite within the file system's time resolution is noticed.
func bumpMtime(t *testing.T, name string) {
	t.Helper()
	fi, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	mt := fi.ModTime().Add(time.Second)
	if err := os.Chtimes(name, mt, mt); err != nil {
		t.Fatal(err)
	}
}

func x509VerifyOptions(l *CAPoolLoader) x509.VerifyOptions {
	return x509.VerifyOptions{Roots: l.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
}
