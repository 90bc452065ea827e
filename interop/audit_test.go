//go:build unix

package interop

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openkes/openkes/internal/testpki"
)

// auditLine is what the test reads from a line of the audit file. The
// fields without a tag match the JSON names case-insensitively, as
// encoding/json does; readAuditFile rejects any other field.
type auditLine struct {
	Time, Method, Path, Key, IP, Identity, Policy, Message string
	Status                                                 int
	LatencyMS                                              float64 `json:"latency_ms"`
}

// TestAuditFileRotation runs 'kes server' with log.audit_file, rotates
// the file the way logrotate does (rename, then SIGHUP) between
// requests, and checks that every request left exactly one whole JSON
// line in the old or the new file (those after the SIGHUP in the new
// one) and one text line on stdout. A second reload sets log.error: warn and
// log.audit: off, which silences stdout but not the file.
func TestAuditFileRotation(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	adminKey := newAPIKey(t)
	admin := "admin:\n  identity: " + adminKey.Identity().String() + "\n"
	srv := startServer(t, serverOptions{Config: admin + "log:\n  audit_file: audit.log\n"})
	client := srv.apiKeyClient(t, adminKey)
	path, rotated := filepath.Join(srv.Dir, "audit.log"), filepath.Join(srv.Dir, "audit.log.1")

	if fi, err := os.Stat(path); err != nil {
		t.Fatalf("no audit file after start-up: %v", err)
	} else if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("audit file mode = %v, want 0600", perm)
	}

	request := func(name string) {
		t.Helper()
		if err := client.CreateKey(ctx, name); err != nil {
			t.Fatalf("CreateKey(%q): %v", name, err)
		}
	}
	const n = 20
	for i := range n {
		request(fmt.Sprintf("before-%d", i))
	}
	if err := os.Rename(path, rotated); err != nil {
		t.Fatal(err)
	}
	// Requests racing with the reload may go to either file, but must
	// go to exactly one of them.
	racing := make(chan struct{})
	go func() {
		defer close(racing)
		for i := range n {
			if err := client.CreateKey(ctx, fmt.Sprintf("racing-%d", i)); err != nil {
				t.Errorf("CreateKey(racing-%d): %v", i, err)
			}
		}
	}()
	if ok, stderr := srv.reload(t); !ok {
		t.Fatalf("reload failed:\n%s", stderr)
	}
	<-racing
	for i := range n {
		request(fmt.Sprintf("after-%d", i))
	}

	// log.audit: off stops the stdout lines, not the file; SIGHUP also
	// applies the new error log level, which the banner shows.
	srv.rewriteConfig(t, admin+"log:\n  error: warn\n  audit: off\n  audit_file: audit.log\n")
	if ok, stderr := srv.reload(t); !ok {
		t.Fatalf("reload with log.audit: off failed:\n%s", stderr)
	}
	out := srv.Stdout.String()
	if banner := out[strings.LastIndex(out, "Logs       "):strings.LastIndex(out, reloadedMsg)]; !strings.HasPrefix(banner, "Logs       error=stderr level=WARN\n           audit=audit.log format=json\n") {
		t.Errorf("the banner after the reload does not show log.error: warn, log.audit: off and the audit file:\n%s", out)
	}
	for i := range n {
		request(fmt.Sprintf("quiet-%d", i))
	}

	// Shutdown writes what is buffered.
	srv.signal(t, syscall.SIGTERM)
	if exited, err := srv.wait(10 * time.Second); !exited || err != nil {
		t.Fatalf("kes did not exit cleanly after SIGTERM: exited %v, err %v", exited, err)
	}

	oldLines, newLines := readAuditFile(t, rotated), readAuditFile(t, path)
	count := map[string]int{}
	for _, l := range append(oldLines, newLines...) {
		count[l.Path]++
		if l.Method != "POST" && l.Method != "PUT" || l.Status != 200 || l.Identity != adminKey.Identity().String() ||
			l.IP != "127.0.0.1" || l.LatencyMS <= 0 || l.Message == "" {
			t.Errorf("audit line %+v: want a successful create by the admin from 127.0.0.1", l)
		}
		if _, err := time.Parse(time.RFC3339Nano, l.Time); err != nil {
			t.Errorf("audit line %+v: time: %v", l, err)
		}
	}
	if got, want := len(oldLines)+len(newLines), 4*n; got != want {
		t.Errorf("%d audit lines in the two files, want %d (one per request)", got, want)
	}
	for _, phase := range []string{"before", "racing", "after", "quiet"} {
		for i := range n {
			name := fmt.Sprintf("%s-%d", phase, i)
			if c := count["/v1/key/create/"+name]; c != 1 {
				t.Errorf("request for %s: %d audit lines, want 1", name, c)
			}
		}
	}
	for _, l := range oldLines {
		if strings.Contains(l.Path, "/after-") || strings.Contains(l.Path, "/quiet-") {
			t.Errorf("%s, requested after the SIGHUP, is in the rotated file", l.Path)
		}
	}
	for _, l := range newLines {
		if strings.Contains(l.Path, "/before-") {
			t.Errorf("%s, requested before the rename and SIGHUP, is in the new file", l.Path)
		}
	}

	stdout := srv.Stdout.String()
	for _, phase := range []string{"before", "racing", "after"} {
		for i := range n {
			want := fmt.Sprintf(" req.path=/v1/key/create/%s-%d ", phase, i)
			if c := strings.Count(stdout, want); c != 1 {
				t.Errorf("stdout has %d lines with %q, want 1", c, want)
			}
		}
	}
	if strings.Contains(stdout, "/v1/key/create/quiet-") {
		t.Errorf("stdout has audit lines after log.audit: off")
	}
	for _, line := range strings.Split(stdout, "\n") {
		if strings.Contains(line, " req.path=") && (!strings.HasPrefix(line, "time=") ||
			!strings.Contains(line, " level=INFO msg=\"secret key '") || !strings.Contains(line, " res.code=200 res.time=")) {
			t.Errorf("stdout audit line %q is not in the upstream format", line)
		}
	}
}

// TestAuditFileErrors checks that an audit file that cannot be opened
// stops the server at start-up, saying which setting and path.
func TestAuditFileErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cert := testpki.Server(t)
	writeFile(t, dir, "server.cert", cert.CertPEM())
	writeFile(t, dir, "server.key", cert.KeyPEM(t))
	if err := os.Mkdir(filepath.Join(dir, "keys"), 0o700); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "no-such-dir", "audit.log")
	writeFile(t, dir, "config.yml", []byte((&kesServer{configAddr: freeAddr(t)}).renderConfig("admin:\n  identity: disabled\nlog:\n  audit_file: "+missing+"\n")))
	stdout, stderr, code := runKes(t, dir, "server", "--config", "config.yml")
	if code != 1 || !strings.Contains(stderr, "log.audit_file: open "+missing+": no such file or directory") {
		t.Errorf("kes server with an audit file in a missing directory: exit code %d, stderr:\n%s\nwant exit code 1 and the path", code, stderr)
	}
	if strings.Contains(stdout, upLine) {
		t.Errorf("the server started:\n%s", stdout)
	}
}

// readAuditFile reads the audit file at path. Every line must be one
// whole JSON object.
func readAuditFile(t *testing.T, path string) []auditLine {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		t.Errorf("%s ends with a partial line", path)
	}
	var lines []auditLine
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		var l auditLine
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l); err != nil {
			t.Errorf("%s: invalid audit line %q: %v", path, sc.Text(), err)
			continue
		}
		lines = append(lines, l)
	}
	return lines
}
