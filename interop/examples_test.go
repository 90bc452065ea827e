package interop

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/kms-go/kes"

	"github.com/openkes/openkes/keystore/etcd/etcdtest"
	"github.com/openkes/openkes/keystore/vault/vaulttest"
)

// exampleDir holds the example configs of docs/production.md.
const exampleDir = "../examples/config"

// exampleConfig reads an example config and turns it into a RawConfig for
// startServer: the listen address and every file path point into the
// test server's directory, and the replacements (e.g. example endpoints →
// test endpoints) are applied. Every replaced text must occur.
func exampleConfig(t *testing.T, name string, replace ...string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(exampleDir, name))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	replace = append(replace, "0.0.0.0:7373", "{{ADDR}}")
	for i := 0; i < len(replace); i += 2 {
		if !strings.Contains(s, replace[i]) {
			t.Fatalf("%s does not contain %q any more: update the test", name, replace[i])
		}
		s = strings.ReplaceAll(s, replace[i], replace[i+1])
	}
	return strings.NewReplacer("/etc/kes/", "{{DIR}}/", "/var/log/kes/", "{{DIR}}/", "/var/lib/kes/", "{{DIR}}/").Replace(s)
}

// exampleIdentities sets the environment variables the examples refer to
// for the admin and MinIO identities and returns both API keys.
func exampleIdentities(t *testing.T) (admin, minio kes.APIKey) {
	admin, minio = newAPIKey(t), newAPIKey(t)
	t.Setenv("KES_ADMIN_IDENTITY", admin.Identity().String())
	t.Setenv("MINIO_IDENTITY", minio.Identity().String())
	return admin, minio
}

// minioStartup does what MinIO does with a KES server (docs/production.md#11-minio) through
// the example's minio policy, and checks that the policy keeps MinIO away
// from deleting keys.
func minioStartup(t *testing.T, srv *kesServer, minio kes.APIKey) {
	t.Helper()
	ctx := t.Context()
	c := srv.apiKeyClient(t, minio)
	if _, err := c.GenerateKey(ctx, "minio-default", []byte("{}")); !errors.Is(err, kes.ErrKeyNotFound) {
		t.Fatalf("GenerateKey before the key exists = %v, want %v", err, kes.ErrKeyNotFound)
	}
	if err := c.CreateKey(ctx, "minio-default"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DescribeKey(ctx, "minio-default"); err != nil {
		t.Fatal(err)
	}
	if err := roundTrip(ctx, c, c, "minio-default"); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteKey(ctx, "minio-default"); !errors.Is(err, kes.ErrNotAllowed) {
		t.Fatalf("DeleteKey as MinIO = %v, want %v", err, kes.ErrNotAllowed)
	}
	if err := c.CreateKey(ctx, "other-key"); !errors.Is(err, kes.ErrNotAllowed) {
		t.Fatalf("CreateKey(other-key) as MinIO = %v, want %v", err, kes.ErrNotAllowed)
	}
}

func newKEKFile(t *testing.T) []byte {
	kek := make([]byte, 32)
	rand.Read(kek)
	return []byte(base64.StdEncoding.EncodeToString(kek) + "\n")
}

// TestExampleEtcd runs examples/config/etcd.yml against a three-member
// etcd cluster with TLS client certificates and user authentication.
func TestExampleEtcd(t *testing.T) {
	cluster := etcdtest.Start(t, 3, etcdtest.WithTLS(), etcdtest.WithAuth("root-password"))
	cluster.AddUser(t, "kes", "kes-password", "kes/")
	t.Setenv("KES_ETCD_PASSWORD", "kes-password")
	admin, minio := exampleIdentities(t)

	files := map[string][]byte{"kek": newKEKFile(t)}
	tlsFiles := cluster.TLSFiles()
	for name, path := range map[string]string{"etcd-ca.pem": tlsFiles.CA, "etcd-client.cert": tlsFiles.Cert, "etcd-client.key": tlsFiles.Key} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		files[name] = b
	}
	ep := cluster.Endpoints()
	config := exampleConfig(t, "etcd.yml",
		"https://etcd-1.example.net:2379", ep[0],
		"https://etcd-2.example.net:2379", ep[1],
		"https://etcd-3.example.net:2379", ep[2],
	)
	srv := startServer(t, serverOptions{RawConfig: config, Files: files})
	minioStartup(t, srv, minio)

	// The admin may delete; the stored value was sealed.
	ctx := t.Context()
	resp, err := cluster.Client(t).Get(ctx, "kes/minio-default")
	if err != nil || len(resp.Kvs) != 1 || !bytes.HasPrefix(resp.Kvs[0].Value, []byte("kes:sealed:v1:")) {
		t.Fatalf("etcd value of kes/minio-default: %v (found %d)", err, len(resp.Kvs))
	}
	if err := srv.apiKeyClient(t, admin).DeleteKey(ctx, "minio-default"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(srv.Dir, "audit.log")); err != nil {
		t.Errorf("the example's audit file: %v", err)
	}
}

// TestExampleFS runs examples/config/fs.yml.
func TestExampleFS(t *testing.T) {
	_, minio := exampleIdentities(t)
	srv := startServer(t, serverOptions{RawConfig: exampleConfig(t, "fs.yml"), Files: map[string][]byte{"kek": newKEKFile(t)}})
	minioStartup(t, srv, minio)
	b, err := os.ReadFile(filepath.Join(srv.Dir, "keys", "minio-default"))
	if err != nil || !bytes.HasPrefix(b, []byte("kes:sealed:v1:")) {
		t.Fatalf("key file of minio-default: %v, sealed: %t", err, bytes.HasPrefix(b, []byte("kes:sealed:v1:")))
	}
}

// TestExampleVault runs examples/config/vault.yml against the Vault API
// fake: K/V v2 in the upstream layout, wrapped with transit.
func TestExampleVault(t *testing.T) {
	v := vaulttest.New(t, vaulttest.Options{})
	v.MountKV("", "kv", 2)
	v.MountTransit("", "transit")
	v.AddAppRole("", "approle", vaulttest.AppRole{Name: "kes", RoleID: "example-role", SecretID: "example-secret", Token: vaulttest.TokenOptions{TTL: time.Hour}})
	t.Setenv("KES_VAULT_ROLE_ID", "example-role")
	t.Setenv("KES_VAULT_SECRET_ID", "example-secret")
	_, minio := exampleIdentities(t)

	config := exampleConfig(t, "vault.yml", "https://vault.example.net:8200", v.URL)
	srv := startServer(t, serverOptions{RawConfig: config, Files: map[string][]byte{"vault-ca.pem": v.CACertPEM()}})
	minioStartup(t, srv, minio)
	data, ok := v.ReadKV("", "kv", "kes/minio-default")
	if !ok {
		t.Fatal("no K/V entry kes/minio-default")
	}
	if value, _ := data["minio-default"].(string); !strings.HasPrefix(value, "vault:v1:") {
		t.Fatalf("K/V entry kes/minio-default = %v, want the field minio-default holding a transit ciphertext", data)
	}
}
