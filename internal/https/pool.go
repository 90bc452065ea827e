package https

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// LoadCertPool returns a pool of the system's root CAs plus the CA
// certificates found at path (see [LoadCAs]). If the system roots are not
// available, the pool holds only the certificates from path.
//
// The system roots are included because the original server includes
// them: with client verification enabled, a certificate issued by a
// public CA is accepted as well.
func LoadCertPool(path string) (*x509.CertPool, error) {
	cas, err := LoadCAs(path)
	if err != nil {
		return nil, err
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	for _, ca := range cas {
		pool.AddCert(ca)
	}
	return pool, nil
}

// LoadCAs reads the certificates at path, which is either a PEM file or a
// directory of PEM files. Subdirectories are skipped; symbolic links are
// followed (Kubernetes mounts secrets as links). An empty directory yields
// no certificates and no error. Every file must contain
// at least one certificate and only CERTIFICATE PEM blocks, else LoadCAs
// returns an error naming the file. A private key in a CA file is an
// error, as it is easily leaked from there.
func LoadCAs(path string) ([]*x509.Certificate, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("https: %w", err)
	}
	if !fi.IsDir() {
		return loadCAFile(path)
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("https: %w", err)
	}
	var cas []*x509.Certificate
	for _, e := range entries { // sorted by name
		name := filepath.Join(path, e.Name())
		fi, err := os.Stat(name)
		if err != nil {
			return nil, fmt.Errorf("https: %w", err)
		}
		if fi.IsDir() {
			continue
		}
		certs, err := loadCAFile(name)
		if err != nil {
			return nil, err
		}
		cas = append(cas, certs...)
	}
	// An empty directory is not an error: the original server accepts it
	// (the pool then holds only the system roots).
	return cas, nil
}

func loadCAFile(name string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("https: %w", err)
	}
	certs, err := parseCAs(data)
	if err != nil {
		return nil, fmt.Errorf("https: CA file '%s': %w", name, err)
	}
	return certs, nil
}

// parseCAs parses data as a sequence of CERTIFICATE PEM blocks.
func parseCAs(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		switch {
		case block.Type == "CERTIFICATE":
		case strings.HasSuffix(block.Type, "PRIVATE KEY"):
			clear(block.Bytes)
			return nil, errors.New("contains a private key")
		default:
			return nil, fmt.Errorf("contains a %q PEM block, expected only certificates", block.Type)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, cert)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM-encoded certificate found")
	}
	return certs, nil
}
