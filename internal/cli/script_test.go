package cli

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/openkes/openkes/internal/testpki"
	"github.com/openkes/openkes/kes"
	"github.com/openkes/openkes/keystore"
	"github.com/openkes/openkes/keystore/mem"
	"github.com/openkes/openkes/server"
)

// TestMain lets the test binary act as the kes command for the scripts:
// testscript puts a "kes" on PATH that re-runs this binary, which then
// runs Run exactly as cmd/kes does.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"kes": func() {
			testMode = true
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, SIGTERM)
			code := Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
			stop()
			os.Exit(code)
		},
	})
}

// TestScript runs the end-to-end tests of the client commands in
// testdata/script: each script gets its own in-memory server, started in
// this process, and these environment variables:
//
//	KES_SERVER        127.0.0.1:<port> of the script's server
//	KES_API_KEY       the admin's API key
//	ADMIN_API_KEY     the same, for scripts that change KES_API_KEY
//	KES_CA            ca.pem in $WORK: the server's self-signed certificate
//	ADMIN_IDENTITY    the admin's identity
//	APP_API_KEY       the API key of the identity of policy "my-app"
//	APP_IDENTITY      its identity
//	UNKNOWN_API_KEY   an API key the server does not know
//	DOWN_SERVER       a server whose key store is unreachable (shared)
//	DEAD_SERVER       an address where nothing listens
//
// Extra commands: envfrom, exitcode, filemode, certcheck, genkey,
// freeaddr, waitfor, traffic (see scriptCmds).
func TestScript(t *testing.T) {
	cert := testpki.Server(t)
	admin, app, unknown := newKey(t), newKey(t), newKey(t)
	down := startServer(t, &server.Config{
		Admin: admin.Identity().String(),
		Store: unreachableStore{mem.New()},
		TLS:   tlsConfig(cert),
	})

	testscript.Run(t, testscript.Params{
		Dir:                 filepath.Join("testdata", "script"),
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			srv, addr, err := newServer(&server.Config{
				Admin: admin.Identity().String(),
				Policies: map[string]server.Policy{
					"my-app": {
						Allow:      []string{"/v1/key/generate/my-app-*", "/v1/key/decrypt/my-app-*", "/v1/key/describe/my-app-*", "/v1/identity/self/describe"},
						Deny:       []string{"/v1/key/generate/my-app-internal-*"},
						Identities: []string{app.Identity().String()},
					},
					"auditor": {
						Allow: []string{"/v1/log/audit", "/v1/key/list/*"},
					},
				},
				Store: mem.New(),
				TLS:   tlsConfig(cert),
			})
			if err != nil {
				return err
			}
			env.Defer(func() { srv.Close() })
			if err := os.WriteFile(filepath.Join(env.WorkDir, "ca.pem"), cert.CertPEM(), 0o644); err != nil {
				return err
			}
			env.Setenv("KES_SERVER", addr)
			env.Setenv("KES_API_KEY", admin.String())
			env.Setenv("ADMIN_API_KEY", admin.String())
			env.Setenv("KES_CA", filepath.Join(env.WorkDir, "ca.pem"))
			env.Setenv("ADMIN_IDENTITY", admin.Identity().String())
			env.Setenv("APP_API_KEY", app.String())
			env.Setenv("APP_IDENTITY", app.Identity().String())
			env.Setenv("UNKNOWN_API_KEY", unknown.String())
			env.Setenv("DOWN_SERVER", down)
			dead, err := deadAddr()
			if err != nil {
				return err
			}
			env.Setenv("DEAD_SERVER", dead)
			return nil
		},
		Cmds: scriptCmds,
	})
}

// scriptCmds are the commands the scripts have beyond testscript's.
var scriptCmds = map[string]func(ts *testscript.TestScript, neg bool, args []string){
	// envfrom NAME FILE REGEXP sets NAME to the first submatch of REGEXP
	// in FILE (or "stdout", "stderr").
	"envfrom": func(ts *testscript.TestScript, neg bool, args []string) {
		if neg || len(args) != 3 {
			ts.Fatalf("usage: envfrom NAME FILE REGEXP")
		}
		re, err := regexp.Compile(args[2])
		ts.Check(err)
		m := re.FindStringSubmatch(ts.ReadFile(args[1]))
		if len(m) < 2 {
			ts.Fatalf("no match for %q in %s", args[2], args[1])
		}
		ts.Setenv(args[0], m[1])
	},
	// exitcode CODE PROGRAM ARGS... runs the program like exec and
	// checks that it exits with CODE.
	"exitcode": func(ts *testscript.TestScript, neg bool, args []string) {
		if neg || len(args) < 2 {
			ts.Fatalf("usage: exitcode CODE PROGRAM ARGS...")
		}
		want, err := strconv.Atoi(args[0])
		ts.Check(err)
		err = ts.Exec(args[1], args[2:]...)
		got := 0
		var exitErr *exec.ExitError
		switch {
		case errors.As(err, &exitErr):
			got = exitErr.ExitCode()
		case err != nil:
			ts.Fatalf("%s: %v", args[1], err)
		}
		if got != want {
			ts.Fatalf("%s exited with code %d, want %d", args[1], got, want)
		}
	},
	// filemode FILE MODE checks the permission bits of FILE (octal).
	"filemode": func(ts *testscript.TestScript, neg bool, args []string) {
		if neg || len(args) != 2 {
			ts.Fatalf("usage: filemode FILE MODE")
		}
		want, err := strconv.ParseUint(args[1], 8, 32)
		ts.Check(err)
		fi, err := os.Stat(ts.MkAbs(args[0]))
		ts.Check(err)
		if got := fi.Mode().Perm(); got != os.FileMode(want) {
			ts.Fatalf("%s has mode %#o, want %#o", args[0], got, want)
		}
	},
	// certcheck FILE KEY=VALUE... checks the first certificate in FILE:
	// cn, dns and ip (comma-separated SANs), eku (clientAuth,serverAuth),
	// days (of validity), identity and selfsigned (true).
	"certcheck": func(ts *testscript.TestScript, neg bool, args []string) {
		if neg || len(args) < 2 {
			ts.Fatalf("usage: certcheck FILE KEY=VALUE...")
		}
		data, err := os.ReadFile(ts.MkAbs(args[0]))
		ts.Check(err)
		block, _ := pem.Decode(data)
		if block == nil || block.Type != "CERTIFICATE" {
			ts.Fatalf("%s: no certificate", args[0])
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		ts.Check(err)
		var ips, ekus []string
		for _, ip := range cert.IPAddresses {
			ips = append(ips, ip.String())
		}
		for _, u := range cert.ExtKeyUsage {
			ekus = append(ekus, map[x509.ExtKeyUsage]string{x509.ExtKeyUsageClientAuth: "clientAuth", x509.ExtKeyUsageServerAuth: "serverAuth"}[u])
		}
		got := map[string]string{
			"cn":         cert.Subject.CommonName,
			"dns":        strings.Join(cert.DNSNames, ","),
			"ip":         strings.Join(ips, ","),
			"eku":        strings.Join(ekus, ","),
			"days":       strconv.Itoa(int(cert.NotAfter.Sub(cert.NotBefore).Round(time.Hour) / (24 * time.Hour))),
			"identity":   kes.IdentityOf(cert).String(),
			"selfsigned": strconv.FormatBool(cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature) == nil && cert.Issuer.String() == cert.Subject.String()),
		}
		for _, kv := range args[1:] {
			k, v, ok := strings.Cut(kv, "=")
			g, known := got[k]
			if !ok || !known {
				ts.Fatalf("certcheck: invalid assertion %q", kv)
			}
			if g != v {
				ts.Fatalf("certificate %s: %s = %q, want %q", args[0], k, g, v)
			}
		}
	},
	// genkey FILE writes a new ECDSA P-256 private key (PKCS#8 PEM).
	"genkey": func(ts *testscript.TestScript, neg bool, args []string) {
		if neg || len(args) != 1 {
			ts.Fatalf("usage: genkey FILE")
		}
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		ts.Check(err)
		der, err := x509.MarshalPKCS8PrivateKey(key)
		ts.Check(err)
		ts.Check(os.WriteFile(ts.MkAbs(args[0]), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600))
	},
	// freeaddr NAME sets NAME to a 127.0.0.1 address with a free port.
	"freeaddr": func(ts *testscript.TestScript, neg bool, args []string) {
		if neg || len(args) != 1 {
			ts.Fatalf("usage: freeaddr NAME")
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		ts.Check(err)
		ts.Setenv(args[0], ln.Addr().String())
		ln.Close()
	},
	// waitfor ADDR waits up to 20 s until ADDR accepts TCP connections.
	"waitfor": func(ts *testscript.TestScript, neg bool, args []string) {
		if neg || len(args) != 1 {
			ts.Fatalf("usage: waitfor ADDR")
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			conn, err := net.DialTimeout("tcp", args[0], 200*time.Millisecond)
			if err == nil {
				conn.Close()
				return
			}
			if time.Now().After(deadline) {
				ts.Fatalf("%s does not accept connections: %v", args[0], err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	},
	// traffic [-ready SERVER] sends requests as admin until the script
	// ends: every 50 ms a describe of the missing key "traffic" to the
	// script's server (an audit event with status 404), or with -ready a
	// readiness check to SERVER (with an unreachable key store, an error
	// log event).
	"traffic": func(ts *testscript.TestScript, neg bool, args []string) {
		endpoint, ready := ts.Getenv("KES_SERVER"), false
		switch {
		case neg:
			ts.Fatalf("usage: traffic [-ready SERVER]")
		case len(args) == 2 && args[0] == "-ready":
			endpoint, ready = args[1], true
		case len(args) != 0:
			ts.Fatalf("usage: traffic [-ready SERVER]")
		}
		key, err := kes.ParseAPIKey(ts.Getenv("KES_API_KEY"))
		ts.Check(err)
		pem, err := os.ReadFile(ts.Getenv("KES_CA"))
		ts.Check(err)
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		certificate, err := kes.GenerateCertificate(key)
		ts.Check(err)
		client := kes.NewClientWithConfig(endpoint, &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{certificate}})
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Go(func() {
			ticker := time.NewTicker(50 * time.Millisecond)
			defer ticker.Stop()
			for {
				if ready {
					client.IsReady(ctx)
				} else {
					client.DescribeKey(ctx, "traffic")
				}
				select {
				case <-ctx.Done():
					return
				case <-ticker.C:
				}
			}
		})
		ts.Defer(func() {
			cancel()
			wg.Wait()
		})
	},
}

// unreachableStore is a key store whose status check always fails as if
// the store were down.
type unreachableStore struct{ keystore.Store }

func (unreachableStore) Status(context.Context) (keystore.State, error) {
	return keystore.State{}, &keystore.UnreachableError{Err: errors.New("connection refused")}
}

func newKey(t *testing.T) kes.APIKey {
	t.Helper()
	key, err := kes.GenerateAPIKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func tlsConfig(cert *testpki.Cert) server.TLSConfig {
	c := cert.TLS
	return server.TLSConfig{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &c, nil }}
}

// newServer starts a server on a free loopback port and returns it with
// its address.
func newServer(conf *server.Config) (*server.Server, string, error) {
	srv, err := server.New(context.Background(), conf)
	if err != nil {
		return nil, "", err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		srv.Close()
		return nil, "", err
	}
	go srv.Serve(context.Background(), ln)
	return srv, ln.Addr().String(), nil
}

// startServer starts a server for the whole test.
func startServer(t *testing.T, conf *server.Config) string {
	t.Helper()
	srv, addr, err := newServer(conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return addr
}

// startAdminServer starts a server for the whole test with a fresh admin
// API key and store, and points the client environment (KES_SERVER,
// KES_API_KEY, KES_CA) at it as the admin. Tests that call it must not be
// parallel.
func startAdminServer(t *testing.T, store keystore.Store) {
	t.Helper()
	cert := testpki.Server(t)
	admin := newKey(t)
	addr := startServer(t, &server.Config{Admin: admin.Identity().String(), Store: store, TLS: tlsConfig(cert)})
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, cert.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KES_SERVER", addr)
	t.Setenv("KES_API_KEY", admin.String())
	t.Setenv("KES_CA", ca)
}

// deadAddr returns a loopback address where nothing listens.
func deadAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
