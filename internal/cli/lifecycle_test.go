package cli

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openkes/openkes/internal/testpki"
	"github.com/openkes/openkes/keystore/mem"
	"github.com/openkes/openkes/server"
)

// The key lifecycle commands (rotate, rewrap, restore, and what info,
// describe and dek show of versions and deletions) against a server that
// gives the answers of docs/api.md and records what the CLI sends.

// fakeAnswer is what the fake server answers to one request.
type fakeAnswer struct {
	status int // 0 means 200
	body   string
}

// fakeKES is an HTTPS server that answers "METHOD /path" with canned
// answers, requires a client certificate like a KES server, and records
// the requests it gets.
type fakeKES struct {
	vars map[string]string // the environment that makes kes talk to it

	mu       sync.Mutex
	requests []string // "METHOD /path body"
}

func newFakeKES(t *testing.T, answers map[string]fakeAnswer) *fakeKES {
	t.Helper()
	f := &fakeKES{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		route := r.Method + " " + r.URL.EscapedPath()
		f.mu.Lock()
		f.requests = append(f.requests, strings.TrimSpace(route+" "+string(body)))
		f.mu.Unlock()
		a, ok := answers[route]
		if !ok {
			http.Error(w, "404 page not found", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if a.status != 0 {
			w.WriteHeader(a.status)
		}
		io.WriteString(w, a.body)
	}))
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	srv.StartTLS()
	t.Cleanup(srv.Close)

	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	f.vars = map[string]string{
		"KES_SERVER":  srv.Listener.Addr().String(),
		"KES_API_KEY": newKey(t).String(),
		"KES_CA":      ca,
	}
	return f
}

// sent returns the requests the server got, and forgets them.
func (f *fakeKES) sent() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.requests
	f.requests = nil
	return r
}

// runKES runs the kes command in this process with the environment
// variables vars (and NO_COLOR) and stdout a terminal or not, and returns
// its exit code, stdout and stderr.
func runKES(t *testing.T, vars map[string]string, tty bool, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	e := &env{
		stdin:  strings.NewReader(""),
		stdout: &stdout,
		stderr: &stderr,
		getenv: func(k string) string {
			if k == "NO_COLOR" {
				return "1"
			}
			return vars[k]
		},
		outTTY:       tty,
		readPassword: func(string) ([]byte, error) { return nil, errNoTerminal },
	}
	code := e.exit(run(t.Context(), e, args))
	return code, stdout.String(), stderr.String()
}

// kesError is an error body as a KES server writes it.
func kesError(msg string) string { return `{"message":"` + msg + `"` + "\n}" }

func TestLifecycleCommands(t *testing.T) {
	t.Parallel()
	const (
		admin = "3ecfcdf38fcbe141ae26a1030f81e96b753365a46760ae6b578698a97c59fd22"
		other = "ea9826089311fe44d7590408ede9150f7c637b6cab0a91ee6fe1aa5d9fb366f6"
		t1    = "2026-01-02T03:04:05.123456789Z"
		t2    = "2026-02-03T04:05:06Z"
		t3    = "2026-03-04T05:06:07Z"
	)
	at := func(s string) string {
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return dateTime(v)
	}
	// info is the human form of a key's info created at t1: the upstream
	// lines, then the lifecycle lines of more.
	info := func(name, alg, owner string, more ...string) string {
		return "Name      " + name + "\nAlgorithm " + alg + "\nDate      " + at(t1) + "\nOwner     " + owner + "\n" +
			strings.Join(more, "")
	}
	rotated := `{"name":"rotated","algorithm":"AES256","created_at":"` + t1 + `","created_by":"` + admin + `","version":3,` +
		`"versions":[{"version":1,"created_at":"` + t1 + `","created_by":"` + admin + `"},` +
		`{"version":2,"created_at":"` + t2 + `"},` +
		`{"version":3,"created_at":"` + t3 + `","created_by":"` + other + `"}]}` + "\n"
	scheduled := `{"name":"scheduled","algorithm":"ChaCha20","created_at":"` + t1 + `",` +
		`"deletion":{"scheduled_at":"` + t2 + `","delete_at":"` + t3 + `","scheduled_by":"` + other + `"}}` + "\n"
	plain := `{"name":"plain","algorithm":"AES256","created_at":"` + t1 + `","created_by":"` + admin + `"}` + "\n"

	fake := newFakeKES(t, map[string]fakeAnswer{
		"POST /v1/key/rotate/my-key":      {body: `{"version":2}` + "\n"},
		"POST /v1/key/rotate/scheduled":   {409, kesError("key is scheduled for deletion")},
		"POST /v1/key/rotate/busy":        {409, kesError("key rotation conflict")},
		"POST /v1/key/rotate/missing":     {404, kesError("key does not exist")},
		"POST /v1/key/rewrap/my-key":      {body: `{"ciphertext":"bmV3","version":3}` + "\n"},
		"POST /v1/key/rewrap/other":       {400, kesError("decryption failed: ciphertext is not authentic")},
		"POST /v1/key/restore/scheduled":  {},
		"POST /v1/key/restore/my-key":     {400, kesError("key is not scheduled for deletion")},
		"GET /v1/key/describe/rotated":    {body: rotated},
		"GET /v1/key/describe/scheduled":  {body: scheduled},
		"GET /v1/key/describe/plain":      {body: plain},
		"POST /v1/key/generate/rotated":   {body: `{"plaintext":"cHQ=","ciphertext":"Y3Q=","version":3}` + "\n"},
		"POST /v1/key/generate/plain":     {body: `{"plaintext":"cHQ=","ciphertext":"Y3Q="}` + "\n"},
		"POST /v1/key/generate/scheduled": {409, kesError("key is scheduled for deletion")},
		"DELETE /v1/key/delete/scheduled": {409, kesError("key is scheduled for deletion")},
	})

	tests := []struct {
		name       string
		args       []string
		tty        bool
		wantCode   int
		wantStdout string
		wantStderr string   // "" for none
		wantSent   []string // the requests, "METHOD /path body"
	}{
		{
			name: "rotate", args: []string{"key", "rotate", "my-key"},
			wantStdout: "Name    my-key\nVersion 2\n",
			wantSent:   []string{"POST /v1/key/rotate/my-key"},
		},
		{
			name: "rotate --json", args: []string{"key", "rotate", "--json", "my-key"},
			wantStdout: `{"name":"my-key","version":2}`,
			wantSent:   []string{"POST /v1/key/rotate/my-key"},
		},
		{
			name: "rotate --json on a terminal", args: []string{"key", "rotate", "my-key", "--json"}, tty: true,
			wantStdout: "{\n  \"name\": \"my-key\",\n  \"version\": 2\n}\n",
			wantSent:   []string{"POST /v1/key/rotate/my-key"},
		},
		{
			name: "rotate scheduled", args: []string{"key", "rotate", "scheduled"},
			wantCode: 1, wantStderr: "kes: error: failed to rotate key \"scheduled\": key is scheduled for deletion\n",
			wantSent: []string{"POST /v1/key/rotate/scheduled"},
		},
		{
			name: "rotate conflict", args: []string{"key", "rotate", "busy"},
			wantCode: 1, wantStderr: "kes: error: failed to rotate key \"busy\": key rotation conflict\n",
			wantSent: []string{"POST /v1/key/rotate/busy"},
		},
		{
			name: "rotate missing key", args: []string{"key", "rotate", "missing"},
			wantCode: 1, wantStderr: "kes: error: failed to rotate key \"missing\": key does not exist\n",
			wantSent: []string{"POST /v1/key/rotate/missing"},
		},
		{
			name: "rotate without name", args: []string{"key", "rotate"},
			wantCode: 2, wantStderr: "kes: error: missing key name. See 'kes key rotate --help'\n",
		},
		{
			name: "rotate two names", args: []string{"key", "rotate", "a", "b"},
			wantCode: 2, wantStderr: "kes: error: too many arguments. See 'kes key rotate --help'\n",
		},
		{
			name: "rotate invalid name", args: []string{"key", "rotate", "../x"},
			wantCode: 1,
			wantStderr: "kes: error: key name '../x' is empty, too long or contains invalid characters\n" +
				"kes: hint: a key name is 1 to 80 characters of A-Z, a-z, 0-9, '_' and '-', does not start or end with '-' and is not just '_'\n",
		},
		{
			name: "rewrap", args: []string{"key", "rewrap", "my-key", "b2xk", "Y3R4"},
			wantStdout: `{"ciphertext":"bmV3","version":3}`,
			wantSent:   []string{`POST /v1/key/rewrap/my-key {"ciphertext":"b2xk","context":"Y3R4"}`},
		},
		{
			name: "rewrap without context on a terminal", args: []string{"key", "rewrap", "my-key", "b2xk"}, tty: true,
			wantStdout: "\nciphertext: bmV3\nversion:    3\n",
			wantSent:   []string{`POST /v1/key/rewrap/my-key {"ciphertext":"b2xk"}`},
		},
		{
			name: "rewrap --json on a terminal", args: []string{"key", "rewrap", "my-key", "b2xk", "--json"}, tty: true,
			wantStdout: `{"ciphertext": "bmV3","version": 3}` + "\n",
			wantSent:   []string{`POST /v1/key/rewrap/my-key {"ciphertext":"b2xk"}`},
		},
		{
			name: "rewrap not authentic", args: []string{"key", "rewrap", "other", "b2xk"},
			wantCode:   1,
			wantStderr: "kes: error: failed to rewrap ciphertext: decryption failed: ciphertext is not authentic\n",
			wantSent:   []string{`POST /v1/key/rewrap/other {"ciphertext":"b2xk"}`},
		},
		{
			name: "rewrap invalid ciphertext", args: []string{"key", "rewrap", "my-key", "not-base64!"},
			wantCode: 1,
			wantStderr: "kes: error: invalid ciphertext: illegal base64 data at input byte 3\n" +
				"kes: hint: the ciphertext must be standard base64\n",
		},
		{
			name: "rewrap invalid context", args: []string{"key", "rewrap", "my-key", "b2xk", "%"},
			wantCode: 1,
			wantStderr: "kes: error: invalid context: illegal base64 data at input byte 0\n" +
				"kes: hint: the context must be standard base64\n",
		},
		{
			name: "rewrap without ciphertext", args: []string{"key", "rewrap", "my-key"},
			wantCode: 2, wantStderr: "kes: error: missing key name and ciphertext. See 'kes key rewrap --help'\n",
		},
		{
			name: "restore", args: []string{"key", "restore", "scheduled"},
			wantSent: []string{"POST /v1/key/restore/scheduled"},
		},
		{
			name: "restore stops at the first error", args: []string{"key", "restore", "my-key", "scheduled"},
			wantCode:   1,
			wantStderr: "kes: error: failed to restore key \"my-key\": key is not scheduled for deletion\n",
			wantSent:   []string{"POST /v1/key/restore/my-key"},
		},
		{
			name: "restore without name", args: []string{"key", "restore"},
			wantCode: 2, wantStderr: "kes: error: missing key name. See 'kes key restore --help'\n",
		},
		{
			name: "info of a rotated key", args: []string{"key", "info", "rotated"},
			wantStdout: info("rotated", "AES256", admin,
				"Version   3\n",
				"Versions  1  "+at(t1)+"  "+admin+"\n",
				"          2  "+at(t2)+"  -\n",
				"          3  "+at(t3)+"  "+other+"\n"),
			wantSent: []string{"GET /v1/key/describe/rotated"},
		},
		{
			name: "describe of a scheduled key", args: []string{"key", "describe", "scheduled"},
			wantStdout: info("scheduled", "ChaCha20", "-",
				"Deletion  "+at(t3)+"\n",
				"Scheduled "+at(t2)+" by "+other+"\n"),
			wantSent: []string{"GET /v1/key/describe/scheduled"},
		},
		{
			name: "describe of a key never rotated", args: []string{"key", "describe", "plain"},
			wantStdout: info("plain", "AES256", admin),
			wantSent:   []string{"GET /v1/key/describe/plain"},
		},
		{
			name: "describe --json of a rotated key", args: []string{"key", "describe", "rotated", "--json"},
			wantStdout: strings.TrimSuffix(rotated, "\n"),
			wantSent:   []string{"GET /v1/key/describe/rotated"},
		},
		{
			name: "info --json of a scheduled key", args: []string{"key", "info", "scheduled", "--json"},
			wantStdout: strings.TrimSuffix(scheduled, "\n"),
			wantSent:   []string{"GET /v1/key/describe/scheduled"},
		},
		{
			name: "info --json of a key never rotated", args: []string{"key", "info", "plain", "--json"},
			wantStdout: strings.TrimSuffix(plain, "\n"),
			wantSent:   []string{"GET /v1/key/describe/plain"},
		},
		{
			name: "dek of a rotated key", args: []string{"key", "dek", "rotated"},
			wantStdout: `{"plaintext":"cHQ=","ciphertext":"Y3Q=","version":3}`,
			wantSent:   []string{"POST /v1/key/generate/rotated {}"},
		},
		{
			name: "dek of a rotated key on a terminal", args: []string{"key", "dek", "rotated"}, tty: true,
			wantStdout: "\nplaintext:  cHQ=\nciphertext: Y3Q=\nversion:    3\n",
			wantSent:   []string{"POST /v1/key/generate/rotated {}"},
		},
		{
			name: "dek of a key never rotated", args: []string{"key", "dek", "plain"},
			wantStdout: `{"plaintext":"cHQ=","ciphertext":"Y3Q="}`,
			wantSent:   []string{"POST /v1/key/generate/plain {}"},
		},
		{
			name: "dek of a scheduled key", args: []string{"key", "dek", "scheduled"},
			wantCode:   1,
			wantStderr: "kes: error: failed to generate data encryption key: key is scheduled for deletion\n",
			wantSent:   []string{"POST /v1/key/generate/scheduled {}"},
		},
		{
			name: "rm of a scheduled key", args: []string{"key", "rm", "scheduled"},
			wantCode:   1,
			wantStderr: "kes: error: failed to remove key \"scheduled\": key is scheduled for deletion\n",
			wantSent:   []string{"DELETE /v1/key/delete/scheduled"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// One server for all cases, so they run one at a time.
			fake.sent()
			code, stdout, stderr := runKES(t, fake.vars, tt.tty, tt.args...)
			if code != tt.wantCode || stdout != tt.wantStdout || stderr != tt.wantStderr {
				t.Errorf("kes %s = exit %d\nstdout %q\nstderr %q\nwant exit %d\nstdout %q\nstderr %q",
					strings.Join(tt.args, " "), code, stdout, stderr, tt.wantCode, tt.wantStdout, tt.wantStderr)
			}
			if got := fake.sent(); strings.Join(got, "\n") != strings.Join(tt.wantSent, "\n") {
				t.Errorf("kes %s sent %q, want %q", strings.Join(tt.args, " "), got, tt.wantSent)
			}
		})
	}
}

// TestLifecycleHelp checks that each lifecycle command has its help and
// that the key command lists it.
func TestLifecycleHelp(t *testing.T) {
	t.Parallel()
	_, keyHelp, _ := runKES(t, nil, false, "key", "--help")
	for _, name := range []string{"describe", "rotate", "rewrap", "restore"} {
		if !strings.Contains(keyHelp, "\n    "+name+" ") {
			t.Errorf("kes key --help does not list %s", name)
		}
		code, stdout, stderr := runKES(t, nil, false, "key", name, "--help")
		if code != 0 || stderr != "" || !strings.HasPrefix(stdout, "Usage:\n    kes key "+name+" [options] <name>") || !strings.Contains(stdout, "\nExamples:\n    $ kes key "+name+" my-key") {
			t.Errorf("kes key %s --help = exit %d, stderr %q, stdout:\n%s", name, code, stderr, stdout)
		}
	}
}

// TestLifecycleEndToEnd drives a real server with a deletion window
// through the lifecycle commands: rotate, generate with both versions,
// decrypt both, rewrap, describe, schedule a deletion, restore.
func TestLifecycleEndToEnd(t *testing.T) {
	t.Parallel()
	cert := testpki.Server(t)
	admin := newKey(t)
	addr := startServer(t, &server.Config{
		Admin:    admin.Identity().String(),
		Store:    mem.New(),
		TLS:      tlsConfig(cert),
		Deletion: server.DeletionConfig{Window: time.Hour},
	})
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, cert.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"KES_SERVER": addr, "KES_API_KEY": admin.String(), "KES_CA": ca}

	// kes runs a command that must succeed and returns its stdout.
	kes := func(args ...string) string {
		t.Helper()
		code, stdout, stderr := runKES(t, vars, false, args...)
		if code != 0 {
			t.Fatalf("kes %s = exit %d, stderr %q", strings.Join(args, " "), code, stderr)
		}
		return stdout
	}
	// fails runs a command that must fail with exit code 1 and the error.
	fails := func(wantErr string, args ...string) {
		t.Helper()
		code, _, stderr := runKES(t, vars, false, args...)
		if code != 1 || !strings.HasPrefix(stderr, "kes: error: "+wantErr+"\n") {
			t.Errorf("kes %s = exit %d, stderr %q; want exit 1 and %q", strings.Join(args, " "), code, stderr, wantErr)
		}
	}
	type dek struct {
		Plaintext, Ciphertext string
		Version               *int
	}
	const aad = "YnVja2V0L29iamVjdA==" // bucket/object

	kes("key", "create", "k")
	old := decodeJSON[dek](t, kes("key", "dek", "k", aad))
	if old.Version != nil {
		t.Errorf("dek of a key never rotated has version %d, want none", *old.Version)
	}
	if got := kes("key", "info", "k", "--json"); strings.Contains(got, "version") || strings.Contains(got, "deletion") {
		t.Errorf("info --json of a key never rotated = %s, want no version or deletion", got)
	}

	if got, want := kes("key", "rotate", "k", "--json"), `{"name":"k","version":2}`; got != want {
		t.Errorf("rotate --json = %s, want %s", got, want)
	}
	cur := decodeJSON[dek](t, kes("key", "dek", "k", aad))
	if cur.Version == nil || *cur.Version != 2 {
		t.Errorf("dek after rotation: version %v, want 2", cur.Version)
	}
	if ct, _ := base64.StdEncoding.DecodeString(cur.Ciphertext); !bytes.HasPrefix(ct, []byte("KESv\x00\x00\x00\x02")) {
		t.Errorf("ciphertext of version 2 = %x..., want the header KESv 2", ct[:min(8, len(ct))])
	}
	for _, d := range []dek{old, cur} {
		if got, want := kes("key", "decrypt", "k", d.Ciphertext, aad), `{"plaintext":"`+d.Plaintext+`"}`; got != want {
			t.Errorf("decrypt = %s, want %s", got, want)
		}
	}

	rewrapped := decodeJSON[struct {
		Ciphertext string
		Version    int
	}](t, kes("key", "rewrap", "k", old.Ciphertext, aad))
	if rewrapped.Version != 2 || rewrapped.Ciphertext == old.Ciphertext {
		t.Errorf("rewrap = version %d, ciphertext %q; want version 2 and a new ciphertext", rewrapped.Version, rewrapped.Ciphertext)
	}
	if got, want := kes("key", "decrypt", "k", rewrapped.Ciphertext, aad), `{"plaintext":"`+old.Plaintext+`"}`; got != want {
		t.Errorf("decrypt of the rewrapped ciphertext = %s, want %s", got, want)
	}
	fails("failed to rewrap ciphertext: decryption failed: ciphertext is not authentic", "key", "rewrap", "k", old.Ciphertext)
	fails("failed to rotate key \"missing\": key does not exist", "key", "rotate", "missing")

	info := decodeJSON[keyInfoJSON](t, kes("key", "describe", "k", "--json"))
	if info.Version != 2 || len(info.Versions) != 2 || info.Versions[0].Version != 1 || info.Versions[1].Version != 2 ||
		info.Versions[1].CreatedBy != admin.Identity() || info.Deletion != nil {
		t.Errorf("describe --json after rotation = %+v, want versions 1 and 2 by the admin and no deletion", info)
	}
	if got := kes("key", "info", "k"); !strings.Contains(got, "\nVersion   2\nVersions  1  ") || !strings.Contains(got, "\n          2  ") {
		t.Errorf("info after rotation:\n%s\nwant the version and a row per version", got)
	}

	// With the deletion window, rm schedules; the key decrypts but does
	// nothing else until it is restored.
	kes("key", "rm", "k")
	info = decodeJSON[keyInfoJSON](t, kes("key", "info", "k", "--json"))
	if d := info.Deletion; d == nil || d.ScheduledBy != admin.Identity() || d.DeleteAt.Sub(d.ScheduledAt) != time.Hour {
		t.Errorf("describe of a scheduled key: deletion %+v, want one by the admin, an hour long", d)
	}
	if got := kes("key", "info", "k"); !strings.Contains(got, "\nDeletion  ") || !strings.Contains(got, "\nScheduled ") || !strings.Contains(got, " by "+admin.Identity().String()+"\n") {
		t.Errorf("info of a scheduled key:\n%s\nwant the deletion and who scheduled it", got)
	}
	if got := kes("key", "ls", "k"); got != "Key\nk\n" {
		t.Errorf("ls of a scheduled key = %q, want it listed", got)
	}
	if got, want := kes("key", "decrypt", "k", cur.Ciphertext, aad), `{"plaintext":"`+cur.Plaintext+`"}`; got != want {
		t.Errorf("decrypt with a scheduled key = %s, want %s", got, want)
	}
	fails("failed to generate data encryption key: key is scheduled for deletion", "key", "dek", "k")
	fails("failed to rotate key \"k\": key is scheduled for deletion", "key", "rotate", "k")
	fails("failed to rewrap ciphertext: key is scheduled for deletion", "key", "rewrap", "k", old.Ciphertext, aad)
	fails("failed to remove key \"k\": key is scheduled for deletion", "key", "rm", "k")
	fails("failed to create key \"k\": key already exists", "key", "create", "k")

	kes("key", "restore", "k")
	fails("failed to restore key \"k\": key is not scheduled for deletion", "key", "restore", "k")
	fails("failed to restore key \"missing\": key does not exist", "key", "restore", "missing")
	cur = decodeJSON[dek](t, kes("key", "dek", "k"))
	if cur.Version == nil || *cur.Version != 2 {
		t.Errorf("dek after restore: version %v, want 2", cur.Version)
	}
	info = decodeJSON[keyInfoJSON](t, kes("key", "info", "k", "--json"))
	if info.Deletion != nil || info.Version != 2 {
		t.Errorf("describe after restore = %+v, want version 2 and no deletion", info)
	}
}

// decodeJSON decodes the JSON output of a command.
func decodeJSON[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("output %q: %v", s, err)
	}
	return v
}
