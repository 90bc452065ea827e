package interop

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/encrypt"
	"github.com/minio/minio-go/v7/pkg/sse"
)

// minioBinary returns the MinIO server binary the end-to-end test runs:
// $KES_TEST_MINIO, else "minio" on $PATH. .ci/run installs it. Without
// one the test is skipped, except under CI=true, where it fails.
func minioBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("KES_TEST_MINIO"); p != "" {
		return p
	}
	if p, err := exec.LookPath("minio"); err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no MinIO server binary: set KES_TEST_MINIO or put minio on PATH (.ci/run installs it)")
	}
	t.Skip("no MinIO server binary (set KES_TEST_MINIO); CI runs this test")
	return ""
}

// minioServer is a running MinIO process using a kes server as its KMS.
type minioServer struct {
	Addr    string
	DataDir string
	Client  *minio.Client
	Output  *syncBuffer
}

// startMinIO starts MinIO on a single drive with kes as its KMS, exactly
// as an operator configures it: MINIO_KMS_KES_ENDPOINT, _KEY_NAME,
// _API_KEY and _CAPATH.
func startMinIO(t *testing.T, bin string, kesSrv *kesServer, apiKey, defaultKey string) *minioServer {
	t.Helper()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	addr := freeAddr(t)
	const user, password = "openkes-test", "openkes-test-secret"
	cmd := exec.Command(bin, "server", data,
		"--address", addr, "--console-address", freeAddr(t),
		"--certs-dir", filepath.Join(dir, "certs"), "--quiet")
	cmd.Env = append(os.Environ(),
		"HOME="+dir,
		"MINIO_ROOT_USER="+user,
		"MINIO_ROOT_PASSWORD="+password,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
		"MINIO_KMS_KES_ENDPOINT="+kesSrv.URL,
		"MINIO_KMS_KES_KEY_NAME="+defaultKey,
		"MINIO_KMS_KES_API_KEY="+apiKey,
		"MINIO_KMS_KES_CAPATH="+filepath.Join(kesSrv.Dir, "server.cert"),
	)
	out := new(syncBuffer)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("minio output:\n%s", out)
		}
	})

	// MinIO answers its readiness probe once it has connected to KES and
	// created (or found) its default key.
	deadline := time.Now().Add(90 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/minio/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-done:
			t.Fatalf("minio exited early:\n%s", out)
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("minio not ready after 90 s:\n%s", out)
		}
	}
	client, err := minio.New(addr, &minio.Options{Creds: credentials.NewStaticV4(user, password, "")})
	if err != nil {
		t.Fatal(err)
	}
	return &minioServer{Addr: addr, DataDir: data, Client: client, Output: out}
}

// plaintext returns size bytes made of a unique marker line repeated, so
// that any stretch of it found on disk can be recognised.
func plaintext(t *testing.T, size int) (data, marker []byte) {
	t.Helper()
	var r [16]byte
	if _, err := rand.Read(r[:]); err != nil {
		t.Fatal(err)
	}
	marker = []byte("OPENKES-PLAINTEXT-" + hex.EncodeToString(r[:]) + "\n")
	data = bytes.Repeat(marker, size/len(marker)+1)[:size]
	return data, marker
}

// onDisk reports whether marker occurs in any file below dir.
func onDisk(t *testing.T, dir string, marker []byte) bool {
	t.Helper()
	found := false
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || found {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		found = bytes.Contains(b, marker)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// TestMinIO runs a real MinIO server against a kes server (the binary,
// over TLS, with an API key and the documented MinIO policy) and checks
// SSE-KMS end to end: bucket auto-encryption, a multipart upload, an
// explicit key with a context, SSE-S3, a copy that re-encrypts under
// another key, GET of each, and that no object's plaintext reaches
// MinIO's disk (while an unencrypted control object does, so the scan
// would see a leak).
func TestMinIO(t *testing.T) {
	bin := minioBinary(t)
	admin := newAPIKey(t)
	minioKey := newAPIKey(t)
	kesSrv := startServer(t, serverOptions{Config: fmt.Sprintf(`
log:
  audit: on
admin:
  identity: %s
policy:
  minio:
    allow:
    - /v1/key/create/minio-*
    - /v1/key/generate/minio-*
    - /v1/key/decrypt/minio-*
    - /v1/key/encrypt/minio-*
    - /v1/key/describe/minio-*
    - /v1/key/list/minio-*
    - /v1/status
    - /v1/metrics
    - /v1/api
    deny:
    - /v1/key/delete/*
    identities:
    - %s
`, admin.Identity(), minioKey.Identity())})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	kc := kesSrv.apiKeyClient(t, admin)
	for _, name := range []string{"minio-app-key", "minio-copy-key"} {
		if err := kc.CreateKey(ctx, name); err != nil {
			t.Fatalf("CreateKey(%q): %v", name, err)
		}
	}

	m := startMinIO(t, bin, kesSrv, minioKey.String(), "minio-default-key")
	if _, err := kc.DescribeKey(ctx, "minio-default-key"); err != nil {
		t.Fatalf("MinIO did not create its default key: %v", err)
	}
	mc := m.Client

	for _, b := range []string{"auto", "explicit", "plain"} {
		if err := mc.MakeBucket(ctx, b, minio.MakeBucketOptions{}); err != nil {
			t.Fatalf("MakeBucket(%q): %v", b, err)
		}
	}
	if err := mc.SetBucketEncryption(ctx, "auto", sse.NewConfigurationSSEKMS("minio-app-key")); err != nil {
		t.Fatalf("SetBucketEncryption: %v", err)
	}
	kmsCtx, err := encrypt.NewSSEKMS("minio-app-key", map[string]string{"tenant": "a", "purpose": "e2e"})
	if err != nil {
		t.Fatal(err)
	}
	copyKey, err := encrypt.NewSSEKMS("minio-copy-key", nil)
	if err != nil {
		t.Fatal(err)
	}

	type object struct {
		bucket, name string
		data, marker []byte
		opts         minio.PutObjectOptions
		wantSSE      string // x-amz-server-side-encryption of the object
		wantKey      string // the KMS key id MinIO reports, if any
	}
	put := func(o *object) {
		t.Helper()
		if _, err := mc.PutObject(ctx, o.bucket, o.name, bytes.NewReader(o.data), int64(len(o.data)), o.opts); err != nil {
			t.Fatalf("PutObject(%s/%s): %v", o.bucket, o.name, err)
		}
	}
	var objects []*object
	add := func(bucket, name string, size int, opts minio.PutObjectOptions, wantSSE, wantKey string) *object {
		data, marker := plaintext(t, size)
		o := &object{bucket, name, data, marker, opts, wantSSE, wantKey}
		put(o)
		objects = append(objects, o)
		return o
	}
	add("auto", "small", 4<<10, minio.PutObjectOptions{}, "aws:kms", "minio-app-key")
	// 12 MiB in 5 MiB parts: a multipart upload, each part sealed.
	add("auto", "multipart", 12<<20, minio.PutObjectOptions{PartSize: 5 << 20}, "aws:kms", "minio-app-key")
	add("explicit", "with-context", 64<<10, minio.PutObjectOptions{ServerSideEncryption: kmsCtx}, "aws:kms", "minio-app-key")
	sseS3 := add("explicit", "sse-s3", 64<<10, minio.PutObjectOptions{ServerSideEncryption: encrypt.NewSSE()}, "AES256", "")

	// A copy of the SSE-S3 object, re-encrypted under another KMS key.
	if _, err := mc.CopyObject(ctx,
		minio.CopyDestOptions{Bucket: "explicit", Object: "copied", Encryption: copyKey},
		minio.CopySrcOptions{Bucket: "explicit", Object: "sse-s3"}); err != nil {
		t.Fatalf("CopyObject: %v", err)
	}
	objects = append(objects, &object{bucket: "explicit", name: "copied", data: sseS3.data, marker: sseS3.marker, wantSSE: "aws:kms", wantKey: "minio-copy-key"})

	for _, o := range objects {
		t.Run(o.bucket+"/"+o.name, func(t *testing.T) {
			info, err := mc.StatObject(ctx, o.bucket, o.name, minio.StatObjectOptions{})
			if err != nil {
				t.Fatalf("StatObject: %v", err)
			}
			if got := info.Metadata.Get("X-Amz-Server-Side-Encryption"); got != o.wantSSE {
				t.Errorf("x-amz-server-side-encryption = %q, want %q", got, o.wantSSE)
			}
			if o.wantKey != "" {
				got := info.Metadata.Get("X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id")
				if !strings.HasSuffix(got, o.wantKey) {
					t.Errorf("KMS key id = %q, want %q", got, o.wantKey)
				}
			}
			obj, err := mc.GetObject(ctx, o.bucket, o.name, minio.GetObjectOptions{})
			if err != nil {
				t.Fatalf("GetObject: %v", err)
			}
			got, err := io.ReadAll(obj)
			obj.Close()
			if err != nil {
				t.Fatalf("reading object: %v", err)
			}
			if !bytes.Equal(got, o.data) {
				t.Fatalf("GET returned %d bytes that differ from the %d bytes put", len(got), len(o.data))
			}
		})
	}

	// The control: an unencrypted object's plaintext is found on disk.
	control, controlMarker := plaintext(t, 64<<10)
	if _, err := mc.PutObject(ctx, "plain", "control", bytes.NewReader(control), int64(len(control)), minio.PutObjectOptions{}); err != nil {
		t.Fatalf("PutObject(plain/control): %v", err)
	}
	if !onDisk(t, m.DataDir, controlMarker) {
		t.Fatal("the unencrypted control object is not found on MinIO's disk: the plaintext scan cannot see anything")
	}
	for _, o := range objects {
		if onDisk(t, m.DataDir, o.marker) {
			t.Errorf("plaintext of %s/%s found on MinIO's disk", o.bucket, o.name)
		}
	}

	// Every data key went through kes: MinIO's requests appear in the
	// audit log with its identity.
	if !strings.Contains(kesSrv.Stdout.String(), minioKey.Identity().String()) {
		t.Error("no audit line of MinIO's identity in the kes output")
	}
}
