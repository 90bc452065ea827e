package cli

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/openkes/openkes/internal/https"
	"github.com/openkes/openkes/kes"
)

// Environment variables of the connection settings (docs/cli.md#connecting-to-a-server), in the
// order they are looked at: the first one set wins. KES_CA and the
// MINIO_KMS_KES_* names of MinIO's own settings go beyond upstream.
var (
	serverEnv   = []string{"MINIO_KES_SERVER", "KES_SERVER", "MINIO_KMS_KES_ENDPOINT"}
	apiKeyEnv   = []string{"MINIO_KES_API_KEY", "KES_API_KEY", "MINIO_KMS_KES_API_KEY"}
	keyFileEnv  = []string{"MINIO_KES_KEY_FILE", "KES_CLIENT_KEY", "MINIO_KES_CLIENT_KEY", "MINIO_KMS_KES_KEY_FILE"}
	certFileEnv = []string{"MINIO_KES_CERT_FILE", "KES_CLIENT_CERT", "MINIO_KES_CLIENT_CERT", "MINIO_KMS_KES_CERT_FILE"}
	caEnv       = []string{"KES_CA", "MINIO_KMS_KES_CAPATH"}
)

// defaultServer is the server of the client commands when none is set.
const defaultServer = "127.0.0.1:7373"

// connFlags are the connection options of the client commands.
type connFlags struct {
	server   string
	apiKey   string
	ca       string
	insecure bool
	enclave  string // accepted for upstream compatibility; there are no enclaves
}

// addConnFlags registers the connection options on fs.
func addConnFlags(fs *flag.FlagSet) *connFlags {
	c := new(connFlags)
	stringFlag(fs, &c.server, "s", "server")
	c.register(fs)
	return c
}

// addConnFlagsNoShort registers the connection options on fs without -s,
// which 'kes status' uses for --short, as upstream.
func addConnFlagsNoShort(fs *flag.FlagSet) *connFlags {
	c := new(connFlags)
	stringFlag(fs, &c.server, "server")
	c.register(fs)
	return c
}

func (c *connFlags) register(fs *flag.FlagSet) {
	stringFlag(fs, &c.apiKey, "a", "api-key")
	stringFlag(fs, &c.ca, "ca")
	boolFlag(fs, &c.insecure, "k", "insecure")
	stringFlag(fs, &c.enclave, "e", "enclave")
}

// lookup returns the value of the first of the variables that is set to
// a non-empty value, and its name.
func (e *env) lookup(names []string) (value, name string) {
	for _, n := range names {
		if v := e.getenv(n); v != "" {
			return v, n
		}
	}
	return "", ""
}

// session is what a client command needs to talk to KES servers.
type session struct {
	client    *kes.Client
	endpoints []string     // https://host:port, in the order given
	identity  kes.Identity // of the client certificate or API key
	tls       *tls.Config
}

// endpoints returns the servers of the -s flag or the environment: the
// value is split on ",", each entry trimmed, "http://" dropped and
// "https://" added where missing.
func (c *connFlags) endpoints(e *env) []string {
	value := c.server
	if value == "" {
		value, _ = e.lookup(serverEnv)
	}
	if value == "" {
		value = defaultServer
	}
	var endpoints []string
	for _, s := range strings.Split(value, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		s = strings.TrimPrefix(s, "http://")
		if !strings.HasPrefix(s, "https://") {
			s = "https://" + s
		}
		endpoints = append(endpoints, s)
	}
	return endpoints
}

// connect checks the connection settings and returns a session. It
// returns the errors of docs/cli.md#connecting-to-a-server when the credentials are missing or
// conflict.
func (c *connFlags) connect(e *env) (*session, error) {
	endpoints := c.endpoints(e)
	if len(endpoints) == 0 {
		return nil, withHint(errors.New("no server specified"), "set KES_SERVER or pass --server <host:port>")
	}

	apiKey, apiKeySource := c.apiKey, "--api-key"
	if apiKey == "" {
		apiKey, apiKeySource = e.lookup(apiKeyEnv)
	}
	keyFile, keyVar := e.lookup(keyFileEnv)
	certFile, certVar := e.lookup(certFileEnv)

	var (
		cert     tls.Certificate
		identity kes.Identity
	)
	switch {
	case apiKey != "" && keyFile != "":
		return nil, withHint(errors.New("API key and private key file cannot be used at the same time"),
			fmt.Sprintf("unset %s or the API key (%s)", keyVar, apiKeySource))
	case apiKey != "" && certFile != "":
		return nil, withHint(errors.New("API key and certificate file cannot be used at the same time"),
			fmt.Sprintf("unset %s or the API key (%s)", certVar, apiKeySource))
	case apiKey != "":
		key, err := kes.ParseAPIKey(apiKey)
		if err != nil {
			return nil, withHint(fmt.Errorf("parsing API key: %w", err),
				fmt.Sprintf("the API key of %s must look like kes:v1:<base64>; 'kes identity new' creates one", apiKeySource))
		}
		if cert, err = kes.GenerateCertificate(key); err != nil {
			return nil, err
		}
		identity = key.Identity()
	case keyFile == "" && certFile == "":
		return nil, withHint(errors.New("no API key specified. Consider setting MINIO_KES_API_KEY"),
			"set KES_API_KEY or pass --api-key; or set KES_CLIENT_CERT and KES_CLIENT_KEY to use a client certificate")
	case certFile == "":
		return nil, withHint(errors.New("no certificate file specified. Consider setting MINIO_KES_CERT_FILE"),
			fmt.Sprintf("set KES_CLIENT_CERT to the certificate of the private key in %s", keyVar))
	case keyFile == "":
		return nil, withHint(errors.New("no private key file specified. Consider setting MINIO_KES_KEY_FILE"),
			fmt.Sprintf("set KES_CLIENT_KEY to the private key of the certificate in %s", certVar))
	default:
		var err error
		if cert, err = loadClientCertificate(e, certFile, keyFile); err != nil {
			return nil, err
		}
		identity = kes.IdentityOf(cert.Leaf)
	}

	if !c.insecure {
		// KES_INSECURE: an OpenKES extension (upstream has only -k).
		switch strings.ToLower(e.getenv("KES_INSECURE")) {
		case "1", "true", "yes", "on":
			c.insecure = true
		}
	}
	conf := &tls.Config{
		MinVersion: tls.VersionTLS12,
		// GetClientCertificate, unlike Certificates, presents the
		// certificate even when the server lists CAs that did not issue
		// it: a server with tls.auth off accepts it anyway.
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil },
		InsecureSkipVerify:   c.insecure,
	}
	ca, caSource := c.ca, "--ca"
	if ca == "" {
		ca, caSource = e.lookup(caEnv)
	}
	if ca != "" && !c.insecure {
		pool, err := https.LoadCertPool(ca)
		if err != nil {
			return nil, withHint(fmt.Errorf("loading the CA certificates of %s: %w", caSource, err),
				"pass a PEM file or a directory of PEM files with the certificates of the CAs to trust")
		}
		conf.RootCAs = pool
	}
	client := kes.NewClientWithConfig("", conf)
	client.Endpoints = endpoints
	return &session{client: client, endpoints: endpoints, identity: identity, tls: conf}, nil
}

// clientFor returns a client for one of the session's endpoints, without
// failover.
func (s *session) clientFor(endpoint string) *kes.Client {
	return kes.NewClientWithConfig(endpoint, s.tls)
}

// loadClientCertificate reads a client certificate and its private key.
// An encrypted (RFC 1423) key is decrypted with a password read from the
// terminal.
func loadClientCertificate(e *env, certFile, keyFile string) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("reading client certificate: %w", err)
	}
	var chain []byte
	for rest := certPEM; ; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			break
		}
		if block.Type == "CERTIFICATE" {
			chain = append(chain, pem.EncodeToMemory(block)...)
		}
	}
	if len(chain) == 0 {
		return tls.Certificate{}, fmt.Errorf("no certificate found in '%s'", certFile)
	}

	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("reading client private key: %w", err)
	}
	defer clear(keyPEM)
	var key *pem.Block
	for rest := keyPEM; key == nil; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			return tls.Certificate{}, fmt.Errorf("no private key found in '%s'", keyFile)
		}
		if strings.HasSuffix(block.Type, "PRIVATE KEY") {
			key = block
		}
	}
	if key.Type == "ENCRYPTED PRIVATE KEY" {
		return tls.Certificate{}, withHint(fmt.Errorf("private key '%s' is PKCS#8-encrypted, which is not supported", keyFile),
			"decrypt it ('openssl pkey -in key.pem -out plain.pem') or use a PEM-encrypted key")
	}
	der := key.Bytes
	//lint:ignore SA1019 RFC 1423 encryption is weak, but KES keys use it and we must read them.
	if x509.IsEncryptedPEMBlock(key) {
		password, err := e.readPassword("Enter password for private key: ")
		if err != nil {
			return tls.Certificate{}, withHint(fmt.Errorf("private key '%s' is encrypted: %w", keyFile, err),
				"run kes on a terminal to enter the password, or decrypt the key")
		}
		//lint:ignore SA1019 see above.
		der, err = x509.DecryptPEMBlock(key, password)
		clear(password)
		if errors.Is(err, x509.IncorrectPasswordError) {
			return tls.Certificate{}, errors.New("incorrect password")
		}
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("decrypting private key '%s': %w", keyFile, err)
		}
		defer clear(der)
	}
	plain := pem.EncodeToMemory(&pem.Block{Type: key.Type, Bytes: der})
	defer clear(plain)
	cert, err := tls.X509KeyPair(chain, plain)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("loading client certificate '%s' and key '%s': %w", certFile, keyFile, err)
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return tls.Certificate{}, fmt.Errorf("parsing client certificate '%s': %w", certFile, err)
		}
	}
	return cert, nil
}

// fail wraps the error of a request to the server as "<what>: <error>",
// with transport errors shortened and a hint where one helps.
func (s *session) fail(err error, format string, args ...any) error {
	hint, short := explain(err)
	if hint == "" && s != nil {
		if host, reason := s.refusal(err); reason != "" {
			hint = refusedHint
			short = &transportError{msg: fmt.Sprintf("%s refused the connection: %s", host, reason), err: err}
		}
	}
	prefix := fmt.Sprintf(format, args...)
	var kerr kes.Error
	if errors.As(short, &kerr) && kerr.Error() == prefix {
		// The server's message says what the command would: say it once.
		err = short
		if hint == "" && kerr.Status() >= 500 {
			hint = "the server could not use its key store; its error log says why (kes log --error)"
		}
	} else {
		err = fmt.Errorf("%s: %w", prefix, short)
	}
	if hint == "" && errors.As(err, &kerr) && kerr.Status() == http.StatusForbidden && s != nil {
		hint = fmt.Sprintf("identity %s may not do this: the admin must allow it in the identity's policy", s.identity)
	}
	return withHint(err, hint)
}

// transportError is an error of reaching a server, described briefly.
type transportError struct {
	msg string
	err error
}

func (e *transportError) Error() string { return e.msg }
func (e *transportError) Unwrap() error { return e.err }

// explain shortens the transport errors of the SDK, which quote the whole
// request URL, and returns a hint for the common ones. The shortened
// error wraps err.
func explain(err error) (hint string, short error) {
	var ue *url.Error
	if !errors.As(err, &ue) {
		return "", err
	}
	host := ue.URL
	if u, perr := url.Parse(ue.URL); perr == nil && u.Host != "" {
		host = u.Host
	}
	var (
		hostErr    x509.HostnameError
		unknownCA  x509.UnknownAuthorityError
		invalid    x509.CertificateInvalidError
		opErr      *net.OpError
		recordErr  tls.RecordHeaderError
		errMsg     = ue.Err.Error()
		simplified = func(msg string) error { return &transportError{msg: msg, err: err} }
	)
	switch {
	case errors.As(err, &hostErr):
		return "connect by a name or IP address the certificate lists, or pass -k/--insecure to skip verification",
			simplified(fmt.Sprintf("the certificate of %s is not valid for that name: %v", host, hostErr))
	case errors.As(err, &unknownCA):
		return "pass --ca <file> (or set KES_CA) with the CA certificate that issued it, or -k/--insecure to skip verification (only for development servers)",
			simplified(fmt.Sprintf("cannot verify the certificate of %s: %v", host, unknownCA))
	case errors.As(err, &invalid):
		return "", simplified(fmt.Sprintf("the certificate of %s is not valid: %v", host, invalid))
	case errors.As(err, &recordErr):
		return "KES servers are reached with https://; check the address",
			simplified(fmt.Sprintf("%s does not speak TLS: %v", host, recordErr))
	case errors.As(err, &opErr) && opErr.Op == "dial":
		cause := opErr.Err.Error()
		var sysErr *os.SyscallError
		if errors.As(opErr.Err, &sysErr) {
			cause = sysErr.Err.Error()
		}
		hint := "check the address in KES_SERVER or --server"
		if errors.Is(err, syscall.ECONNREFUSED) {
			hint = "is the server running? Check the address in KES_SERVER or --server"
		}
		return hint, simplified(fmt.Sprintf("cannot connect to %s: %s", host, cause))
	case errors.As(err, &opErr) && opErr.Op == "remote error":
		return refusedHint, simplified(fmt.Sprintf("%s refused the connection: %v", host, opErr.Err))
	}
	return "", simplified(fmt.Sprintf("%s: %s", host, errMsg))
}

// refusedHint is the hint for a client certificate the server refused.
const refusedHint = "the server does not accept the client certificate: check tls.auth and tls.ca of its config"

// refusal finds out whether a transport error that says nothing about
// the cause (HTTP/2's "client conn could not be established", a reset
// connection, EOF) is a refused client certificate. With TLS 1.3 the
// server checks the client certificate after the client has finished
// its side of the handshake, and its alert is lost when the HTTP/2
// transport fails first. refusal dials the server once more over TLS
// with HTTP/1.1 and reads the first record, which is then the alert. It
// returns the server's host and the alert ("remote error: tls: bad
// certificate"), or "" if the probe does not show a refusal.
func (s *session) refusal(err error) (host, reason string) {
	var ue *url.Error
	if s.tls == nil || !errors.As(err, &ue) {
		return "", ""
	}
	u, perr := url.Parse(ue.URL)
	if perr != nil || u.Host == "" {
		return "", ""
	}
	conf := s.tls.Clone()
	conf.NextProtos = []string{"http/1.1"}
	if conf.ServerName == "" {
		conf.ServerName = u.Hostname()
	}
	d := &net.Dialer{Timeout: 3 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", u.Host, conf)
	if err == nil {
		defer conn.Close()
		conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err = conn.Read(make([]byte, 1))
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "remote error" {
		return u.Host, opErr.Err.Error()
	}
	return "", ""
}
