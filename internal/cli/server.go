package cli

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/openkes/openkes/config"
	"github.com/openkes/openkes/internal/https"
	"github.com/openkes/openkes/internal/memlock"
	"github.com/openkes/openkes/kes"
	"github.com/openkes/openkes/keystore"
	_ "github.com/openkes/openkes/keystore/all" // register the key-store backends
	"github.com/openkes/openkes/keystore/mem"
	"github.com/openkes/openkes/server"
)

const serverUsage = `Usage:
    kes server [options]

Options:
    --config <path>          Path to the server configuration file.
    --addr <[ip]:port>       The network interface and port to listen on.
                             Default: the config's address, or 0.0.0.0:7373
                             (127.0.0.1:7373 with --dev).
    --dev                    Start a development server: in-memory keys, a
                             self-signed certificate and a fresh admin API key.
    --auth <on|off>          Verify client certificates against tls.ca (on) or
                             accept any valid certificate (off). Overrides
                             tls.auth of the config file.
    --root <identity>        The admin identity. Overrides admin.identity.
    --key <path>             Server private key. Overrides tls.key.
    --cert <path>            Server certificate. Overrides tls.cert.
    --check                  Validate the configuration (and the TLS files it
                             names) without starting; exit 0 if it is usable.
    --strict                 With --check: fail on warnings too.
    -h, --help               Print command line options.

Signals:
    SIGHUP reloads the configuration file and reopens log.audit_file (to
    rotate it, rename it and send SIGHUP). Certificate files are re-read
    when they change. SIGINT and SIGTERM stop the server gracefully.

Examples:
  1. Start a development server on 127.0.0.1:7373:
     $ kes server --dev

  2. Start a server with a configuration file:
     $ kes server --config config.yml

  3. Check a configuration file before deploying it:
     $ kes server --config config.yml --check
`

// serverFlags are the options of 'kes server'.
type serverFlags struct {
	config, addr, auth, root, key, cert string
	dev, check, strict                  bool
}

var serverCommand = &command{
	name:  "server",
	usage: serverUsage,
	// As upstream, the options end at the first argument.
	flagsFirst: true,
	flags: func(fs *flag.FlagSet) runFunc {
		var f serverFlags
		fs.StringVar(&f.config, "config", "", "")
		fs.StringVar(&f.addr, "addr", "", "")
		fs.BoolVar(&f.dev, "dev", false, "")
		fs.StringVar(&f.auth, "auth", "", "")
		fs.StringVar(&f.root, "root", "", "")
		fs.StringVar(&f.key, "key", "", "")
		fs.StringVar(&f.cert, "cert", "", "")
		fs.BoolVar(&f.check, "check", false, "")
		fs.BoolVar(&f.strict, "strict", false, "")
		return func(ctx context.Context, c *call) error { return runServer(ctx, c.env, &f) }
	},
	// In the order of the usage text.
	completeFlags:  []string{"--config", "--addr", "--dev", "--auth", "--root", "--key", "--cert", "--help"},
	completeValues: []string{"--config", "--addr", "--auth", "--root", "--key", "--cert"},
}

func runServer(ctx context.Context, e *env, f *serverFlags) error {
	if f.dev && f.config != "" {
		return &usageError{msg: "'--config' flag is not supported in development mode"}
	}
	if !f.dev && f.config == "" {
		return &hintError{
			err:  &usageError{msg: "no configuration file specified"},
			hint: "pass --config <file>, or --dev for a development server",
		}
	}
	if f.auth != "" && f.auth != "on" && f.auth != "off" {
		return &usageError{msg: fmt.Sprintf("invalid --auth value %q: use 'on' or 'off'", f.auth)}
	}
	if (f.key == "") != (f.cert == "") {
		return &usageError{msg: "'--key' and '--cert' must be used together"}
	}
	if f.addr != "" {
		if err := config.CheckAddr(f.addr); err != nil {
			return &usageError{msg: "invalid --addr: " + err.Error()}
		}
	}
	if f.check {
		if f.dev {
			return &usageError{msg: "'--check' needs '--config', not '--dev'"}
		}
		return e.checkConfig(f.config, f.overrides(), f.strict)
	}
	if f.strict {
		return &usageError{msg: "'--strict' is only used with '--check'"}
	}

	// Catch SIGHUP before the listener exists: its default action ends
	// the process, and a client (or a script that sends SIGHUP as soon as
	// the port answers) must not be able to kill the server that way. A
	// SIGHUP received during start-up is handled once the server runs.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	errLevel, auditLevel := new(slog.LevelVar), new(slog.LevelVar)
	errorLog := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: errLevel}))
	audit := newAuditLog(e.stdout, auditLevel, func(sink string, err error) {
		errorLog.Error("audit log: write failed", "sink", sink, "err", err)
	})
	// Deferred first, so it runs last: after the server has stopped
	// producing records, what is buffered is written.
	defer audit.Close()

	var (
		conf   *server.Config
		file   *config.File // the running configuration's file; nil with --dev
		devCA  string       // --dev: the file holding the self-signed certificate
		addr   string
		apiKey string
		err    error
	)
	if f.dev {
		conf, addr, apiKey, devCA, err = devConfig(f, e.stderr)
	} else {
		conf, file, err = fileConfig(ctx, f, errorLog, e.stderr)
		if err == nil {
			if err = audit.useFile(file.AuditFile); err != nil {
				conf.Store.Close()
			}
		}
		if err == nil {
			addr = file.Addr
			errLevel.Set(file.ErrorLevel)
			auditLevel.Set(file.AuditLevel)
			audit.setSync(file.AuditSync)
		}
	}
	if err != nil {
		return err
	}
	conf.ErrorLog, conf.AuditLog = errorLog, audit
	conf.HTTP1Stdlib = http1Stdlib()

	srv, err := server.New(ctx, conf)
	if err != nil {
		conf.Store.Close()
		return err
	}
	defer srv.Close()

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mlocked := memlock.Lock()
	printBanner(e.stdout, conf, ln.Addr().String(), apiKey, devCA, storeName(conf.Store), mlocked, errLevel.Level(), auditLevel.Level(), audit.path)

	serveCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(serveCtx, ln) }()
	for {
		select {
		case <-hup:
			if f.dev {
				fmt.Fprintln(e.stderr, "kes: SIGHUP ignored: there is no configuration file to reload in development mode")
				continue
			}
			newConf, newFile, err := reload(ctx, srv, f, errorLog, audit, errLevel, e.stderr)
			if err != nil {
				fmt.Fprintf(e.stderr, "kes: error: failed to reload server config: %v\n", err)
				// SIGHUP after renaming the audit file is how it is
				// rotated; that must not depend on a valid config.
				if err := audit.reopen(); err != nil {
					fmt.Fprintf(e.stderr, "kes: error: failed to reopen the audit file: %v\n", err)
				}
				continue
			}
			// As after start-up, show what is running now, after the
			// audit lines of the requests before the reload.
			audit.Flush()
			printBanner(e.stdout, newConf, ln.Addr().String(), "", "", storeName(newConf.Store), mlocked, errLevel.Level(), auditLevel.Level(), audit.path)
			fmt.Fprintln(e.stdout, "=> Reloading configuration after SIGHUP signal completed.")
			fmt.Fprintf(e.stdout, "=> Reload: %s\n", describeChanges(file, newFile))
			file = newFile
		case err := <-done:
			fmt.Fprintln(e.stdout, "\n=> Stopping server... Goodbye.")
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		}
	}
}

// overrides returns the settings of the command line that replace those
// of the config file.
func (f *serverFlags) overrides() config.Overrides {
	return config.Overrides{Admin: f.root, KeyFile: f.key, CertFile: f.cert, Auth: f.auth, Addr: f.addr}
}

// fileConfig reads the config file, applies the command-line overrides
// and connects to the key store. The file is returned for the settings
// the caller applies once the configuration is in use: address, log
// levels and audit file.
func fileConfig(ctx context.Context, f *serverFlags, log *slog.Logger, stderr io.Writer) (*server.Config, *config.File, error) {
	// The flags replace file settings before the file is validated, so
	// they can also stand in for settings the file leaves out.
	file, err := config.ReadFile(f.config, f.overrides())
	if ce := (*config.Error)(nil); errors.As(err, &ce) {
		// The warnings of a file that also has errors: fix all at once.
		for _, w := range ce.Warnings {
			fmt.Fprintf(stderr, "kes: warning: %s\n", w)
		}
	}
	if err != nil {
		return nil, nil, err
	}
	for _, w := range file.Warnings {
		fmt.Fprintf(stderr, "kes: warning: %s\n", w)
	}
	if err := file.KeyStoreError(); err != nil {
		return nil, nil, err
	}
	tlsConf, err := loadTLS(file, stderr)
	if err != nil {
		return nil, nil, err
	}
	store, err := file.KeyStore.Connect(ctx, log)
	if err != nil {
		return nil, nil, fmt.Errorf("keystore.%s: %w", file.KeyStoreKind, err)
	}
	return file.ServerConfig(store, tlsConf), file, nil
}

// reload builds a new configuration from the config file and swaps it in,
// together with the log levels and the audit file, which is reopened even
// if its path has not changed (rotation). On failure the running
// configuration, levels and audit file stay in place. On success the new
// configuration is returned.
func reload(ctx context.Context, srv *server.Server, f *serverFlags, log *slog.Logger, audit *auditLog, errLevel *slog.LevelVar, stderr io.Writer) (*server.Config, *config.File, error) {
	conf, file, err := fileConfig(ctx, f, log, stderr)
	if err != nil {
		return nil, nil, err
	}
	auditFile, err := openAuditFile(file.AuditFile)
	if err != nil {
		conf.Store.Close()
		return nil, nil, err
	}
	conf.ErrorLog, conf.AuditLog = log, audit
	conf.HTTP1Stdlib = http1Stdlib()
	if err := srv.Update(ctx, conf); err != nil {
		conf.Store.Close()
		if auditFile != nil {
			auditFile.Close()
		}
		return nil, nil, err
	}
	errLevel.Set(file.ErrorLevel)
	audit.level.Set(file.AuditLevel)
	audit.setSync(file.AuditSync)
	audit.setFile(auditFile)
	audit.path = file.AuditFile
	return conf, file, nil
}

// loadTLS loads the server certificate (re-read when the files change)
// and the client CAs. A changed certificate that cannot be loaded is
// reported on stderr; the previous one stays in use.
func loadTLS(file *config.File, stderr io.Writer) (server.TLSConfig, error) {
	loader, err := https.NewCertificateLoader(file.TLS.CertFile, file.TLS.KeyFile, file.TLS.Password)
	if err != nil {
		return server.TLSConfig{}, fmt.Errorf("tls: %w", err)
	}
	loader.OnError = certReloadError(stderr)
	conf := server.TLSConfig{GetCertificate: loader.GetCertificate, VerifyClients: file.TLS.Auth}
	if file.TLS.CAFile != "" {
		// Re-read when the CA files change, as the certificate is.
		cas, err := https.NewCAPoolLoader(file.TLS.CAFile)
		if err != nil {
			return server.TLSConfig{}, fmt.Errorf("tls.ca: %w", err)
		}
		cas.OnError = func(err error) {
			fmt.Fprintf(stderr, "kes: error: failed to reload tls.ca: %v\n", err)
		}
		conf.ClientCAs, conf.GetClientCAs = cas.Pool(), cas.Pool
	}
	return conf, nil
}

// certReloadError returns the OnError function of a certificate loader:
// it reports that the changed certificate files were not taken.
func certReloadError(stderr io.Writer) func(error) {
	return func(err error) {
		fmt.Fprintf(stderr, "kes: error: failed to reload TLS certificate: %v\n", err)
	}
}

// writeDevCA writes the dev server's self-signed certificate to
// <tmp>/kes-dev-<port>.crt (public material, mode 0644) and returns the
// path.
func writeDevCA(addr string, cert *tls.Certificate) (string, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	path := filepath.Join(os.TempDir(), "kes-dev-"+port+".crt")
	block := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]})
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, block, 0o644); err != nil {
		return "", fmt.Errorf("writing the dev certificate: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("writing the dev certificate: %w", err)
	}
	return path, nil
}

// devConfig returns the configuration of 'kes server --dev'.
// With its own self-signed certificate, the certificate is written to a
// file in the temporary folder (caFile), so that clients can trust it
// with KES_CA instead of skipping verification.
func devConfig(f *serverFlags, stderr io.Writer) (conf *server.Config, addr, apiKey, caFile string, err error) {
	addr = "127.0.0.1:7373"
	if f.addr != "" {
		addr = f.addr
	}
	key, err := kes.GenerateAPIKey(nil)
	if err != nil {
		return nil, "", "", "", err
	}
	admin := key.Identity().String()
	if f.root != "" {
		admin, apiKey = f.root, ""
	} else {
		apiKey = key.String()
	}
	var tlsConf server.TLSConfig
	if f.key != "" {
		loader, err := https.NewCertificateLoader(f.cert, f.key, "")
		if err != nil {
			return nil, "", "", "", err
		}
		loader.OnError = certReloadError(stderr)
		tlsConf.GetCertificate = loader.GetCertificate
	} else {
		cert, err := selfSignedCert(addr)
		if err != nil {
			return nil, "", "", "", err
		}
		tlsConf.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return cert, nil }
		if caFile, err = writeDevCA(addr, cert); err != nil {
			return nil, "", "", "", err
		}
	}
	tlsConf.VerifyClients = f.auth == "on"
	return &server.Config{
		Admin: admin,
		Store: mem.New(),
		Cache: server.CacheConfig{Any: 5 * time.Minute, Unused: 30 * time.Second},
		TLS:   tlsConf,
	}, addr, apiKey, caFile, nil
}

// selfSignedCert creates the ECDSA P-256 certificate of a dev server: CN
// localhost, SANs localhost and the listener IP, or every interface IP
// when listening on all interfaces.
func selfSignedCert(addr string) (*tls.Certificate, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	var more []net.IP
	if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
		more = []net.IP{ip}
	} else {
		more = interfaceIPs()
	}
	for _, ip := range more {
		if !slices.ContainsFunc(ips, ip.Equal) {
			ips = append(ips, ip)
		}
	}
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "localhost"},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(90 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv, Leaf: leaf}, nil
}

// interfaceIPs returns the unicast, non-link-local IPs of all interfaces
// that are up.
func interfaceIPs() []net.IP {
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil
	}
	var ips []net.IP
	for _, iface := range ifaces {
		if iface.Flags&net.FlagUp == 0 {
			continue
		}
		addrs, err := iface.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.IsGlobalUnicast() || ok && n.IP.IsLoopback() {
				ips = append(ips, n.IP)
			}
		}
	}
	return ips
}

// storeName returns the display name of a key store.
func storeName(s keystore.Store) string {
	if n, ok := s.(fmt.Stringer); ok {
		return n.String()
	}
	return fmt.Sprintf("%T", s)
}

// printBanner prints the start-up summary.
func printBanner(w io.Writer, conf *server.Config, addr, apiKey, caFile, store string, mlocked bool, errLevel, auditLevel slog.Level, auditFile string) {
	var b strings.Builder
	version, commit := server.BuildVersion()
	fmt.Fprintf(&b, "Version    %s\nCommit     %s\n", version, commit)
	fmt.Fprintf(&b, "License    Apache-2.0\n\n")
	fmt.Fprintf(&b, "KMS        %s\n", store)
	host, port, _ := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		for _, ip := range interfaceIPs() {
			fmt.Fprintf(&b, "API        · https://%s\n", net.JoinHostPort(ip.String(), port))
		}
	} else {
		fmt.Fprintf(&b, "API        · https://%s\n", addr)
	}
	fmt.Fprintf(&b, "\n")
	if apiKey != "" {
		fmt.Fprintf(&b, "API Key    %s\n", apiKey)
	}
	admin := conf.Admin
	if !isIdentity(admin) {
		admin = "<disabled>"
	}
	fmt.Fprintf(&b, "Admin      %s\n", admin)
	fmt.Fprintf(&b, "Logs       error=stderr level=%s\n", errLevel)
	if auditLevel <= slog.LevelInfo {
		fmt.Fprintf(&b, "           audit=stdout level=%s\n", auditLevel)
	}
	if auditFile != "" {
		fmt.Fprintf(&b, "           audit=%s format=json\n", auditFile)
	}
	if mlocked {
		fmt.Fprintf(&b, "MLock      enabled\n")
	}
	if apiKey != "" {
		fmt.Fprintf(&b, "\nClients:   export KES_SERVER=https://%s\n           export KES_API_KEY=%s\n", addr, apiKey)
		if caFile != "" {
			fmt.Fprintf(&b, "           export KES_CA=%s\n", caFile)
		}
	}
	fmt.Fprintf(&b, "\n=> Server is up and running...\n")
	io.WriteString(w, b.String())
}

// isIdentity reports whether s looks like a KES identity (64 lowercase hex).
func isIdentity(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// http1Stdlib reports whether OPENKES_HTTP1=stdlib asks to serve HTTP/1.1
// with net/http's server instead of the server's own connection loop: an
// operational switch in case a client trips over the faster path.
func http1Stdlib() bool { return os.Getenv("OPENKES_HTTP1") == "stdlib" }
