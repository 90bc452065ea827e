// Package https loads the TLS material of a KES server: the server
// certificate with its private key, and the CA certificates that client
// certificates are verified against.
//
// The rules follow the original KES server, so that existing deployments
// keep working:
//
//   - A certificate file holds only CERTIFICATE PEM blocks, leaf first.
//     A private key in a certificate file is an error, because it usually
//     means the two files were mixed up.
//   - A key file may hold CERTIFICATE blocks and private key blocks; the
//     first block whose type ends in "PRIVATE KEY" is used (PKCS#8, PKCS#1
//     RSA or SEC 1 EC). A legacy RFC 1423 encrypted key (Proc-Type:
//     4,ENCRYPTED) is decrypted with the configured password.
//   - The leaf certificate must name at least one DNS name or IP address
//     as subject alternative name, since clients verify those, not the
//     common name.
//   - A CA path is a PEM file or a directory of PEM files; every file must
//     contain certificates and nothing else.
//
// [CertificateLoader] re-reads the certificate files when they change, so
// certificates can be rotated without restarting the server.
package https

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
)

// ErrPasswordRequired is returned, wrapped, when a private key is
// encrypted but no password was given.
var ErrPasswordRequired = errors.New("https: private key is encrypted: password required")

// ErrNoSAN is returned when the server certificate names neither a DNS
// name nor an IP address as subject alternative name. Its text is the one
// the original server prints.
var ErrNoSAN = errors.New("invalid TLS certificate: certificate does not contain any DNS or IP address as SAN")

// LoadCertificate reads a PEM certificate chain from certFile and the
// matching private key from keyFile. If the private key is an RFC 1423
// encrypted PEM block it is decrypted with password; password is ignored
// for unencrypted keys.
//
// It returns an error if a file cannot be read, certFile contains anything
// but certificates, keyFile contains no private key, the key is encrypted
// and password is empty ([ErrPasswordRequired]) or wrong, the key does not
// belong to the leaf certificate, or the leaf certificate has no DNS or IP
// SAN ([ErrNoSAN]).
func LoadCertificate(certFile, keyFile, password string) (*tls.Certificate, error) {
	cert, err := loadKeyPair(certFile, keyFile, password)
	if err != nil {
		return nil, err
	}
	if len(cert.Leaf.DNSNames) == 0 && len(cert.Leaf.IPAddresses) == 0 {
		return nil, ErrNoSAN
	}
	return cert, nil
}

// loadKeyPair is LoadCertificate without the SAN check, which client
// certificates need not pass.
func loadKeyPair(certFile, keyFile, password string) (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("https: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("https: %w", err)
	}
	defer clear(keyPEM)
	return parseKeyPair(certPEM, keyPEM, password)
}

// parseKeyPair is loadKeyPair on file contents. The returned
// certificate's Leaf is set.
func parseKeyPair(certPEM, keyPEM []byte, password string) (*tls.Certificate, error) {
	chain, err := certificateBlocks(certPEM)
	if err != nil {
		return nil, err
	}
	key, err := privateKeyBlock(keyPEM, password)
	if err != nil {
		return nil, err
	}
	keyOut := pem.EncodeToMemory(key)
	defer clear(keyOut)
	defer clear(key.Bytes)

	// tls.X509KeyPair knows every key encoding Go supports and checks that
	// the key matches the leaf, so it does the rest.
	cert, err := tls.X509KeyPair(chain, keyOut)
	if err != nil {
		return nil, fmt.Errorf("https: %w", err)
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("https: %w", err)
		}
	}
	return &cert, nil
}

// certificateBlocks checks that data consists of CERTIFICATE PEM blocks
// only and returns them re-encoded.
func certificateBlocks(data []byte) ([]byte, error) {
	var out bytes.Buffer
	for n := 0; ; n++ {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			// Text around the blocks (such as the "subject=" lines openssl
			// writes) is ignored, as by pem.Decode and the original server.
			if n == 0 {
				return nil, errors.New("https: no PEM-encoded certificate found in the certificate file")
			}
			return out.Bytes(), nil
		}
		switch {
		case block.Type == "CERTIFICATE":
			pem.Encode(&out, &pem.Block{Type: block.Type, Bytes: block.Bytes}) // writing to a bytes.Buffer cannot fail
		case strings.HasSuffix(block.Type, "PRIVATE KEY"):
			return nil, errors.New("https: the certificate file contains a private key")
		default:
			return nil, fmt.Errorf("https: the certificate file contains a %q PEM block, expected only certificates", block.Type)
		}
	}
}

// privateKeyBlock returns the first private key block of data, decrypted
// if necessary. Other blocks (certificates, EC parameters) are skipped.
func privateKeyBlock(data []byte, password string) (*pem.Block, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("https: no PEM-encoded private key found in the key file")
		}
		if !strings.HasSuffix(block.Type, "PRIVATE KEY") {
			continue
		}
		if block.Type == "ENCRYPTED PRIVATE KEY" {
			// PKCS#8 encryption (PBES2) is not supported by the Go standard
			// library, nor was it by the original server.
			return nil, errors.New("https: encrypted PKCS#8 private keys are not supported: decrypt the key or use an RFC 1423 encrypted key")
		}
		//lint:ignore SA1019 RFC 1423 encryption is insecure, but KES configs use it and we must keep reading such keys.
		if !x509.IsEncryptedPEMBlock(block) {
			return &pem.Block{Type: block.Type, Bytes: block.Bytes}, nil
		}
		if password == "" {
			return nil, ErrPasswordRequired
		}
		//lint:ignore SA1019 see above: needed to read legacy encrypted keys.
		der, err := x509.DecryptPEMBlock(block, []byte(password))
		if err != nil {
			return nil, fmt.Errorf("https: failed to decrypt private key: %w", err)
		}
		return &pem.Block{Type: block.Type, Bytes: der}, nil
	}
}
