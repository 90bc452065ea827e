package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/openkes/openkes/internal/crypto"
	"github.com/openkes/openkes/keystore"
	"github.com/openkes/openkes/keystore/fs"
	"github.com/openkes/openkes/keystore/migrate"
	"github.com/openkes/openkes/keystore/seal"
)

// migrateCmd runs "kes migrate args..." in-process.
func migrateCmd(ctx context.Context, args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = Run(ctx, append([]string{"migrate"}, args...), strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

// fsStoreConfig writes a config file whose key store is the directory
// dir and returns its path. The file has only a keystore section:
// migrate needs nothing else.
func fsStoreConfig(t *testing.T, dir string) string {
	t.Helper()
	return writeMigrateConfig(t, fmt.Sprintf("keystore:\n  fs:\n    path: '%s'\n", dir))
}

func writeMigrateConfig(t *testing.T, body string) string {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "config-*.yml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(body); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

// writeFSKeys writes the keys straight into the fs key store directory dir,
// as the fs store lays them out (one file per key, mode 0600), which is
// much faster than Create with its fsyncs.
func writeFSKeys(t *testing.T, dir string, keys map[string][]byte) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, value := range keys {
		if err := os.WriteFile(filepath.Join(dir, name), value, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// newKeyValues returns n keys named prefix-000000, ... with realistic
// values: serialised key versions, as the server stores them.
func newKeyValues(t *testing.T, prefix string, n int) map[string][]byte {
	t.Helper()
	created := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	keys := make(map[string][]byte, n)
	for i := range n {
		v, err := crypto.GenerateKeyVersion(crypto.AES256, created, "3ecfcdf38fcbe141ae26a1030f81e96b753365a46760ae6b578698a97c59fd22", nil)
		if err != nil {
			t.Fatal(err)
		}
		text, err := v.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		keys[fmt.Sprintf("%s-%06d", prefix, i)] = text
	}
	return keys
}

// readFSKeys returns every file of an fs key store directory. Stray
// files (a temporary file left behind) show up too, and fail comparisons.
func readFSKeys(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	keys := make(map[string][]byte, len(entries))
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		keys[e.Name()] = b
	}
	return keys
}

// diffKeys reports the first difference between two key sets, or "".
// It does not print values: they are keys.
func diffKeys(got, want map[string][]byte) string {
	for _, name := range slices.Sorted(maps.Keys(want)) {
		g, ok := got[name]
		switch {
		case !ok:
			return fmt.Sprintf("key %q is missing", name)
		case !bytes.Equal(g, want[name]):
			return fmt.Sprintf("key %q differs (%d bytes, want %d)", name, len(g), len(want[name]))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[name]; !ok {
			return fmt.Sprintf("unexpected key %q", name)
		}
	}
	return ""
}

// setMigrateHooks replaces the hooks for the duration of the test. Tests
// that call it must not be parallel.
func setMigrateHooks(t *testing.T, set func()) {
	t.Helper()
	saved := migrateHooks
	t.Cleanup(func() { migrateHooks = saved })
	set()
	if migrateHooks.ticker == nil {
		// Fake clocks need a quiet ticker: reports come from finished
		// keys only.
		migrateHooks.ticker = func(time.Duration) (<-chan time.Time, func()) { return nil, func() {} }
	}
}

// steppingClock returns a clock that advances by step at every reading.
func steppingClock(step time.Duration) func() time.Time {
	now := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	return func() time.Time {
		now = now.Add(step)
		return now
	}
}

// TestMigrateManyKeys migrates 10,000 keys from one fs store to another
// and compares every file byte for byte. It logs the rate.
func TestMigrateManyKeys(t *testing.T) {
	t.Parallel()
	n := 10_000
	if testing.Short() {
		n = 1000
	}
	srcDir, dstDir := t.TempDir(), filepath.Join(t.TempDir(), "new", "keys")
	keys := newKeyValues(t, "key", n)
	writeFSKeys(t, srcDir, keys)

	start := time.Now()
	code, stdout, stderr := migrateCmd(t.Context(), "--from", fsStoreConfig(t, srcDir), "--to", fsStoreConfig(t, dstDir))
	elapsed := time.Since(start)
	if code != 0 {
		t.Fatalf("kes migrate = %d, stderr:\n%s", code, stderr)
	}
	t.Logf("migrated %d keys fs → fs in %v: %.0f keys/s", n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds())

	if want := fmt.Sprintf("Migrated %d keys successfully!\n", n); !strings.HasSuffix(stdout, want) {
		t.Errorf("stdout ends with %q, want %q", lastLineOf(stdout), want)
	}
	if stderr != "" {
		t.Errorf("stderr = %q, want nothing", stderr)
	}
	if d := diffKeys(readFSKeys(t, dstDir), keys); d != "" {
		t.Errorf("target after migration: %s", d)
	}
	if d := diffKeys(readFSKeys(t, srcDir), keys); d != "" {
		t.Errorf("source after migration: %s", d)
	}
}

func lastLineOf(s string) string {
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	return lines[len(lines)-1]
}

// cancelingStore cancels a context once a number of keys were created
// in it, as an interrupt would.
type cancelingStore struct {
	keystore.Store
	after   int64
	created atomic.Int64
	cancel  context.CancelFunc
}

func (s *cancelingStore) Create(ctx context.Context, name string, value []byte) error {
	err := s.Store.Create(ctx, name, value)
	if err == nil && s.created.Add(1) == s.after {
		s.cancel()
	}
	return err
}

var interruptedRE = regexp.MustCompile(`^kes: error: migration interrupted: (\d+) of (\d+) keys migrated\n` +
	`kes: hint: the source is unchanged and every migrated key is complete; run the same command with --merge to copy the remaining keys\n$`)

// TestMigrateInterrupted interrupts a migration after a third of the keys
// and resumes it with --merge.
func TestMigrateInterrupted(t *testing.T) {
	const n = 1500
	srcDir, dstDir := t.TempDir(), t.TempDir()
	keys := newKeyValues(t, "key", n)
	writeFSKeys(t, srcDir, keys)
	from, to := fsStoreConfig(t, srcDir), fsStoreConfig(t, dstDir)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var target *cancelingStore
	setMigrateHooks(t, func() {
		migrateHooks.target = func(s keystore.Store) keystore.Store {
			target = &cancelingStore{Store: s, after: n / 3, cancel: cancel}
			return target
		}
	})
	code, _, stderr := migrateCmd(ctx, "--from", from, "--to", to)
	if code != 1 {
		t.Fatalf("interrupted kes migrate = %d, want 1; stderr:\n%s", code, stderr)
	}
	m := interruptedRE.FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("stderr = %q, want %q", stderr, interruptedRE)
	}
	migrated, _ := strconv.Atoi(m[1])
	if m[2] != strconv.Itoa(n) || migrated < n/3 || migrated >= n {
		t.Errorf("interrupted after %s of %s keys, want %d of at least %d and fewer than all", m[1], m[2], n, n/3)
	}
	// The count is exact, and every key that made it is complete.
	partial := readFSKeys(t, dstDir)
	if len(partial) != migrated || int(target.created.Load()) != migrated {
		t.Errorf("target holds %d keys (%d created), the report says %d", len(partial), target.created.Load(), migrated)
	}
	for name, value := range partial {
		if !bytes.Equal(value, keys[name]) {
			t.Errorf("key %q in the target differs from the source", name)
		}
	}
	if d := diffKeys(readFSKeys(t, srcDir), keys); d != "" {
		t.Errorf("source after the interrupt: %s", d)
	}

	// Without --merge, the keys already copied are conflicts.
	migrateHooks.target = nil
	code, _, stderr = migrateCmd(t.Context(), "--from", from, "--to", to)
	if code != 1 || !strings.Contains(stderr, "already exists in the target; use --merge to skip existing keys or --force to overwrite") {
		t.Errorf("kes migrate again = %d, stderr:\n%s\nwant exit 1 and a conflict", code, stderr)
	}

	code, stdout, stderr := migrateCmd(t.Context(), "--merge", "--from", from, "--to", to)
	if code != 0 {
		t.Fatalf("kes migrate --merge = %d, stderr:\n%s", code, stderr)
	}
	// The run without --merge may have copied a few more keys before it
	// stopped at its first conflict. Progress lines may come first.
	resumed := regexp.MustCompile(`(?:^|\n)Migrated (\d+) keys successfully!\nSkipped (\d+) keys already in the target with the same value\.\n$`)
	m = resumed.FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("kes migrate --merge stdout = %q, want %q", stdout, resumed)
	}
	copied, _ := strconv.Atoi(m[1])
	skipped, _ := strconv.Atoi(m[2])
	if copied+skipped != n || skipped < migrated {
		t.Errorf("resumed: %d copied + %d skipped, want %d in all and at least %d skipped", copied, skipped, n, migrated)
	}
	if d := diffKeys(readFSKeys(t, dstDir), keys); d != "" {
		t.Errorf("target after resuming: %s", d)
	}
}

func TestMigratePattern(t *testing.T) {
	t.Parallel()
	names := []string{"minio-a", "minio-b", "minio_c", "other-1", "other-22", "m"}
	tests := []struct {
		name    string
		pattern []string // argument; none for the default
		want    []string
	}{
		{name: "default", want: names},
		{name: "star", pattern: []string{"*"}, want: names},
		{name: "prefix", pattern: []string{"minio-*"}, want: []string{"minio-a", "minio-b"}},
		{name: "question mark", pattern: []string{"other-?"}, want: []string{"other-1"}},
		{name: "class", pattern: []string{"minio?[bc]"}, want: []string{"minio-b", "minio_c"}},
		{name: "negated class", pattern: []string{"other-[^2]*"}, want: []string{"other-1"}},
		{name: "exact", pattern: []string{"m"}, want: []string{"m"}},
		{name: "no match", pattern: []string{"nothing*"}, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srcDir, dstDir := t.TempDir(), t.TempDir()
			keys := map[string][]byte{}
			for _, name := range names {
				keys[name] = []byte("value of " + name)
			}
			writeFSKeys(t, srcDir, keys)
			args := append([]string{"--from", fsStoreConfig(t, srcDir), "--to", fsStoreConfig(t, dstDir)}, tt.pattern...)
			code, stdout, stderr := migrateCmd(t.Context(), args...)
			if code != 0 {
				t.Fatalf("kes migrate = %d, stderr:\n%s", code, stderr)
			}
			wantOut := fmt.Sprintf("Migrated %d keys successfully!\n", len(tt.want))
			if len(tt.want) == 0 {
				wantOut = "Migration succeeded! No keys migrated.\n"
			}
			if stdout != wantOut {
				t.Errorf("stdout = %q, want %q", stdout, wantOut)
			}
			want := map[string][]byte{}
			for _, name := range tt.want {
				want[name] = keys[name]
			}
			if d := diffKeys(readFSKeys(t, dstDir), want); d != "" {
				t.Errorf("target: %s", d)
			}
		})
	}
}

// TestMigrateExisting covers keys that exist in the target: an error
// without flags, kept with --merge, replaced with --force.
func TestMigrateExisting(t *testing.T) {
	t.Parallel()
	source := map[string][]byte{
		"differs": []byte("new value"),
		"same":    []byte("same value"),
		"fresh":   []byte("fresh value"),
	}
	target := map[string][]byte{
		"differs":        []byte("old value"),
		"same":           []byte("same value"),
		"only-in-target": []byte("kept"),
	}
	// What --force and -f give.
	const forcedStdout = "Migrated 2 keys successfully!\n" +
		"Replaced 1 keys whose value in the target differed.\n" +
		"Skipped 1 keys already in the target with the same value.\n"
	forced := map[string][]byte{"differs": []byte("new value"), "same": []byte("same value"), "fresh": []byte("fresh value"), "only-in-target": []byte("kept")}
	tests := []struct {
		name       string
		flags      []string
		wantStdout string
		want       map[string][]byte // the target afterwards
	}{
		{"force", []string{"--force"}, forcedStdout, forced},
		{"force short", []string{"-f"}, forcedStdout, forced},
		{
			name:  "merge",
			flags: []string{"--merge"},
			wantStdout: "Migrated 1 keys successfully!\n" +
				"Skipped 1 keys already in the target with the same value.\n" +
				"Skipped 1 keys that exist in the target with a different value.\n" +
				"Kept the target's value of: differs\n",
			want: map[string][]byte{"differs": []byte("old value"), "same": []byte("same value"), "fresh": []byte("fresh value"), "only-in-target": []byte("kept")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srcDir, dstDir := t.TempDir(), t.TempDir()
			writeFSKeys(t, srcDir, source)
			writeFSKeys(t, dstDir, target)
			args := slices.Concat(tt.flags, []string{"--from", fsStoreConfig(t, srcDir), "--to", fsStoreConfig(t, dstDir)})
			code, stdout, stderr := migrateCmd(t.Context(), args...)
			if code != 0 || stderr != "" {
				t.Fatalf("kes migrate = %d, stderr:\n%s", code, stderr)
			}
			if stdout != tt.wantStdout {
				t.Errorf("stdout = %q, want %q", stdout, tt.wantStdout)
			}
			if d := diffKeys(readFSKeys(t, dstDir), tt.want); d != "" {
				t.Errorf("target: %s", d)
			}
			if d := diffKeys(readFSKeys(t, srcDir), source); d != "" {
				t.Errorf("source: %s", d)
			}
		})
	}
}

func TestMigrateConflict(t *testing.T) {
	t.Parallel()
	srcDir, dstDir := t.TempDir(), t.TempDir()
	writeFSKeys(t, srcDir, map[string][]byte{"my-key": []byte("source")})
	writeFSKeys(t, dstDir, map[string][]byte{"my-key": []byte("target")})
	code, stdout, stderr := migrateCmd(t.Context(), "--from", fsStoreConfig(t, srcDir), "--to", fsStoreConfig(t, dstDir))
	if code != 1 {
		t.Errorf("kes migrate = %d, want 1", code)
	}
	if want := "kes: error: key 'my-key' already exists in the target; use --merge to skip existing keys or --force to overwrite\n"; stderr != want {
		t.Errorf("stderr = %q, want %q", stderr, want)
	}
	if stdout != "" {
		t.Errorf("stdout = %q, want nothing", stdout)
	}
	if got, _ := os.ReadFile(filepath.Join(dstDir, "my-key")); string(got) != "target" {
		t.Errorf("target key = %q, want it unchanged", got)
	}
}

// TestMigrateConflictHint checks that after a conflict the hint says how
// many keys were copied and how to go on.
func TestMigrateConflictHint(t *testing.T) {
	srcDir, dstDir := t.TempDir(), t.TempDir()
	writeFSKeys(t, srcDir, map[string][]byte{"a-key": []byte("a"), "my-key": []byte("source"), "other": []byte("o")})
	writeFSKeys(t, dstDir, map[string][]byte{"my-key": []byte("target"), "z-key": []byte("z")})
	// One key at a time, so that a-key is copied before the conflict.
	setMigrateHooks(t, func() { migrateHooks.workers = 1 })
	code, _, stderr := migrateCmd(t.Context(), "--from", fsStoreConfig(t, srcDir), "--to", fsStoreConfig(t, dstDir), "*-key")
	want := "kes: error: key 'my-key' already exists in the target; use --merge to skip existing keys or --force to overwrite\n" +
		"kes: hint: 1 of 2 keys were migrated before the error; the source is unchanged; run the same command with --merge to copy the remaining keys\n"
	if code != 1 || stderr != want {
		t.Errorf("kes migrate = %d, stderr %q; want 1, %q", code, stderr, want)
	}
}

func TestMigrateUsage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	from, to := fsStoreConfig(t, filepath.Join(dir, "a")), fsStoreConfig(t, filepath.Join(dir, "b"))
	tests := []struct {
		name string
		args []string
		want string // stderr
	}{
		{name: "force and merge", args: []string{"--force", "--merge", "--from", from, "--to", to},
			want: "kes: error: '--force' and '--merge' flags are mutually exclusive\n"},
		{name: "f and merge", args: []string{"--from", from, "--merge", "--to", to, "-f"},
			want: "kes: error: '--force' and '--merge' flags are mutually exclusive\n"},
		{name: "no source", args: []string{"--to", to},
			want: "kes: error: no source specified. Use '--from' flag\n"},
		{name: "no flags", args: nil,
			want: "kes: error: no source specified. Use '--from' flag\n"},
		{name: "no target", args: []string{"--from", from},
			want: "kes: error: no target specified. Use '--to' flag\n"},
		{name: "two patterns", args: []string{"--from", from, "--to", to, "a*", "b*"},
			want: "kes: error: too many arguments. See 'kes migrate --help'\n"},
		{name: "bad pattern", args: []string{"--from", from, "--to", to, "key-["},
			want: "kes: error: invalid pattern 'key-[': syntax error in pattern. See 'kes migrate --help'\n"},
		{name: "unknown flag", args: []string{"--from", from, "--to", to, "--bogus"},
			want: "kes: error: flag provided but not defined: -bogus. See 'kes migrate --help'\n"},
		{name: "MinIO KMS target", args: []string{"--from", from, "-s", "127.0.0.1:7373", "-e", "tenant", "-a", "k"},
			want: "kes: error: migrating to a MinIO KMS server (--server, --enclave, --api-key) is not supported\n" +
				"kes: hint: copy the keys into a key store with '--to <config file>'\n"},
		{name: "missing value", args: []string{"--to", to, "--from"},
			want: "kes: error: flag needs an argument: -from. See 'kes migrate --help'\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := migrateCmd(t.Context(), tt.args...)
			if code != 2 || stderr != tt.want || stdout != "" {
				t.Errorf("kes migrate %q = %d, stdout %q, stderr %q; want 2, nothing, %q", tt.args, code, stdout, stderr, tt.want)
			}
		})
	}
	t.Cleanup(func() {
		// Nothing was connected to: the fs stores did not create their
		// directories.
		for _, d := range []string{"a", "b"} {
			if _, err := os.Stat(filepath.Join(dir, d)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("key store directory %s: %v, want it not created", d, err)
			}
		}
	})

	t.Run("help", func(t *testing.T) {
		t.Parallel()
		code, stdout, _ := migrateCmd(t.Context(), "--help")
		if code != 0 || stdout != migrateUsage {
			t.Errorf("kes migrate --help = %d, %q; want 0 and the usage", code, stdout)
		}
		if !strings.Contains(migrateUsage, "Examples:") {
			t.Error("the usage has no examples")
		}
	})
	t.Run("pattern before flags", func(t *testing.T) {
		t.Parallel()
		srcDir, dstDir := t.TempDir(), t.TempDir()
		writeFSKeys(t, srcDir, map[string][]byte{"a-1": []byte("1"), "b-1": []byte("2")})
		code, stdout, stderr := migrateCmd(t.Context(), "a-*", "--from", fsStoreConfig(t, srcDir), "--to", fsStoreConfig(t, dstDir))
		if code != 0 || stdout != "Migrated 1 keys successfully!\n" {
			t.Errorf("kes migrate = %d, %q, stderr %q", code, stdout, stderr)
		}
	})
}

// TestMigrateConfigErrors checks that problems of the config files are
// reported with the file they are in, and that only the keystore section
// matters.
func TestMigrateConfigErrors(t *testing.T) {
	t.Parallel()
	fsFile := fsStoreConfig(t, t.TempDir())

	// Every upstream key store is built in; the "kes" section is the one
	// the original server parses but cannot use. (A backend left out by
	// a build tag is checked by interop's TestUnsupportedKeyStore.)
	unsupportedSection := "kes: {endpoint: ['https://kes:7373']}"
	unsupportedFile := writeMigrateConfig(t, "admin: {identity: disabled}\ntls: {key: k, cert: c}\nkeystore: {"+unsupportedSection+"}\n")
	invalidFile := writeMigrateConfig(t, "keystore: {fs: {paht: /tmp/x}}\n")
	missing := filepath.Join(t.TempDir(), "missing.yml")

	tests := []struct {
		name     string
		from, to string
		want     string
	}{
		{name: "unsupported source", from: unsupportedFile, to: fsFile,
			want: fmt.Sprintf("kes: warning: source %s: keystore.kes: the KES key store is not supported, ignored\nkes: error: source %s: keystore: no keystore specified (the kes key store is not supported)\n", unsupportedFile, unsupportedFile)},
		{name: "unsupported target", from: fsFile, to: unsupportedFile,
			want: fmt.Sprintf("kes: warning: target %s: keystore.kes: the KES key store is not supported, ignored\nkes: error: target %s: keystore: no keystore specified (the kes key store is not supported)\n", unsupportedFile, unsupportedFile)},
		{name: "invalid", from: invalidFile, to: fsFile,
			want: fmt.Sprintf("kes: warning: source %s: keystore.fs.paht: unknown key, ignored\nkes: error: source %s: keystore.fs.path: required\n", invalidFile, invalidFile)},
		{name: "missing", from: fsFile, to: missing,
			want: fmt.Sprintf("kes: error: target %s: open %s: no such file or directory\n", missing, missing)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := migrateCmd(t.Context(), "--from", tt.from, "--to", tt.to)
			if code != 1 || stderr != tt.want || stdout != "" {
				t.Errorf("kes migrate = %d, stdout %q, stderr %q; want 1, nothing, %q", code, stdout, stderr, tt.want)
			}
		})
	}

	t.Run("full server config", func(t *testing.T) {
		t.Parallel()
		srcDir, dstDir := t.TempDir(), t.TempDir()
		writeFSKeys(t, srcDir, map[string][]byte{"k": []byte("v")})
		// A server config with a policy and settings that would not
		// start a server (no certificate files): only keystore matters.
		from := writeMigrateConfig(t, fmt.Sprintf("address: 0.0.0.0:7373\nadmin: {identity: disabled}\ntls: {key: ./missing.key, cert: ./missing.crt}\n"+
			"policy: {app: {allow: [/v1/key/*], identities: ['${MIGRATE_TEST_UNSET}']}}\nkeystore:\n  fs:\n    path: '%s'\n", srcDir))
		code, stdout, stderr := migrateCmd(t.Context(), "--from", from, "--to", fsStoreConfig(t, dstDir))
		if code != 0 || stdout != "Migrated 1 keys successfully!\n" || stderr != "" {
			t.Errorf("kes migrate = %d, stdout %q, stderr %q", code, stdout, stderr)
		}
	})
	t.Run("empty source", func(t *testing.T) {
		t.Parallel()
		code, stdout, stderr := migrateCmd(t.Context(), "--from", fsStoreConfig(t, t.TempDir()), "--to", fsStoreConfig(t, t.TempDir()))
		if code != 0 || stdout != "Migration succeeded! No keys migrated.\n" || stderr != "" {
			t.Errorf("kes migrate = %d, stdout %q, stderr %q", code, stdout, stderr)
		}
	})
}

// TestMigrateProgress checks the progress reports on stdout, with a fake
// clock: lines when stdout is no terminal, a bar when it is one.
func TestMigrateProgress(t *testing.T) {
	five := map[string][]byte{"a": []byte("1"), "b": []byte("2"), "c": []byte("3"), "d": []byte("4"), "e": []byte("5")}
	three := map[string][]byte{"a": []byte("1"), "b": []byte("2"), "c": []byte("3")}
	tests := []struct {
		name     string
		src, dst map[string][]byte // keys in the source and already in the target
		flags    []string
		tty      bool
		step     time.Duration // the clock advances by step at every reading
		want     string
	}{
		// The clock is read when copying starts and after every key: at
		// 0.6 s per reading, a second has passed after keys 2 and 4.
		{"lines", five, nil, nil, false, 600 * time.Millisecond,
			"Migrated      2 keys ...\n" +
				"Migrated      4 keys ...\n" +
				"Migrated 5 keys successfully!\n"},
		{"lines skipped", three, three, []string{"--merge"}, false, time.Second,
			"Migrated      0 keys ... (1 skipped)\n" +
				"Migrated      0 keys ... (2 skipped)\n" +
				"Migrated      0 keys ... (3 skipped)\n" +
				"Migration succeeded! No keys migrated.\n" +
				"Skipped 3 keys already in the target with the same value.\n"},
		// The clock advances 0.1 s per reading; the bar is due every 0.2
		// s, i.e. after every key (one reading to decide, one to draw).
		{"bar", five, nil, nil, true, 100 * time.Millisecond,
			"\r0/5 [>                             ]   0%      - keys/s  ETA --" +
				"\r1/5 [======>                       ]  20%      3 keys/s  ETA 1s" +
				"\r2/5 [============>                 ]  40%      4 keys/s  ETA 1s" +
				"\r3/5 [==================>           ]  60%      4 keys/s  ETA 0s" +
				"\r4/5 [========================>     ]  80%      4 keys/s  ETA 0s" +
				"\r5/5 [==============================] 100%      5 keys/s  ETA 0s" +
				"\r5/5 [==============================] 100%      4 keys/s  ETA 0s\n" +
				"Migrated 5 keys successfully!\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { // not parallel: setMigrateHooks
			srcDir, dstDir := t.TempDir(), t.TempDir()
			writeFSKeys(t, srcDir, tt.src)
			if tt.dst != nil {
				writeFSKeys(t, dstDir, tt.dst)
			}
			setMigrateHooks(t, func() {
				migrateHooks.isTerminal = func(*env) bool { return tt.tty }
				migrateHooks.now = steppingClock(tt.step)
			})
			args := slices.Concat(tt.flags, []string{"--from", fsStoreConfig(t, srcDir), "--to", fsStoreConfig(t, dstDir)})
			code, stdout, stderr := migrateCmd(t.Context(), args...)
			if code != 0 {
				t.Fatalf("kes migrate = %d, stderr:\n%s", code, stderr)
			}
			if diff := cmp.Diff(tt.want, stdout); diff != "" {
				t.Errorf("stdout mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMigrateProgressBarPadding(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	p := &migrateProgress{w: &b, tty: true, now: steppingClock(time.Second)}
	s := migrate.Stats{Total: 100}
	p.start(s) // slow: ETA in minutes
	s.Count[migrate.Copied] = 1
	p.draw(s)
	s.Count[migrate.Copied] = 99
	p.draw(s) // fast: shorter ETA, the rest of the old line is blanked
	frames := strings.Split(b.String(), "\r")[1:]
	if len(frames) != 3 {
		t.Fatalf("frames = %q, want 3", frames)
	}
	if len(frames[2]) != len(frames[1]) || !strings.HasSuffix(frames[2], "ETA 0s   ") {
		t.Errorf("frames = %q; want the last one padded to the length of the one before", frames)
	}
}

// TestMigrateResealInPlace seals the keys of an fs store in place, as
// the usage text says: the same sealed config as source and target. Keys
// stored unsealed or sealed with an old KEK end up sealed with the
// current KEK, keep their values, and are never missing (the fs store
// replaces atomically).
func TestMigrateResealInPlace(t *testing.T) {
	dir := t.TempDir()
	keys := newKeyValues(t, "k", 30)
	kekDir := t.TempDir()
	oldKEKFile, newKEKFile := filepath.Join(kekDir, "kek.1"), filepath.Join(kekDir, "kek.2")
	os.WriteFile(oldKEKFile, bytes.Repeat([]byte{1}, 32), 0o600)
	os.WriteFile(newKEKFile, bytes.Repeat([]byte{2}, 32), 0o600)
	oldKEK, err := seal.ReadKEKFile(oldKEKFile)
	if err != nil {
		t.Fatal(err)
	}
	newKEK, err := seal.ReadKEKFile(newKEKFile)
	if err != nil {
		t.Fatal(err)
	}
	// Twenty keys unsealed, ten sealed with the old KEK.
	inner, err := fs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	oldSealed := seal.Wrap(inner, oldKEK)
	for name, v := range keys {
		st := keystore.Store(inner)
		if name < "k-000010" {
			st = oldSealed
		}
		if err := st.Create(t.Context(), name, v); err != nil {
			t.Fatal(err)
		}
	}

	// A plain source would hand the target sealed text to seal again:
	// refused, and nothing changes.
	plain := fsStoreConfig(t, dir)
	sealed := writeMigrateConfig(t, fmt.Sprintf("keystore:\n  fs:\n    path: '%s'\n    seal:\n      kek_file: '%s'\n      old_kek_files: ['%s']\n", dir, newKEKFile, oldKEKFile))
	before := readFSKeys(t, dir)
	if code, _, stderr := migrateCmd(t.Context(), "--force", "--from", plain, "--to", sealed); code == 0 || !strings.Contains(stderr, "sealed already") {
		t.Errorf("kes migrate --force from the unsealed view = %d, stderr %q; want a refusal to seal twice", code, stderr)
	}
	if d := diffKeys(readFSKeys(t, dir), before); d != "" {
		t.Fatalf("a refused migration changed the store: %s", d)
	}

	code, stdout, stderr := migrateCmd(t.Context(), "--force", "--from", sealed, "--to", sealed)
	if code != 0 || !strings.Contains(stdout, "Replaced 30 keys") {
		t.Fatalf("kes migrate --force = %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	files := readFSKeys(t, dir)
	if len(files) != len(keys) {
		t.Fatalf("found %d files after resealing, want %d", len(files), len(keys))
	}
	for name, data := range files {
		if id, ok := seal.SealedWith(data); !ok || id != newKEK.ID() {
			t.Fatalf("%s is sealed with %q (sealed: %t) after resealing, want %s", name, id, ok, newKEK.ID())
		}
	}
	// Only the new KEK is needed now, and every value is unchanged.
	only := seal.Wrap(inner, newKEK)
	for name, want := range keys {
		got, err := only.Get(t.Context(), name)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("Get(%s) after resealing: %v (value equal: %t)", name, err, bytes.Equal(got, want))
		}
	}
	// Running it again changes nothing.
	code, stdout, stderr = migrateCmd(t.Context(), "--force", "--from", sealed, "--to", sealed)
	if code != 0 || strings.Contains(stdout, "Replaced") {
		t.Errorf("second kes migrate --force = %d, stdout %q, stderr %q; want nothing replaced", code, stdout, stderr)
	}
	if d := diffKeys(readFSKeys(t, dir), files); d != "" {
		t.Errorf("second run changed the store: %s", d)
	}
}

// sealedStore says that it is sealed, as the fs and etcd stores with a
// seal section do.
type sealedStore struct{ keystore.Store }

func (sealedStore) Sealed() bool { return true }

// TestMigrateSealedToUnsealed checks that copying from a sealed store to
// an unsealed one asks for --force.
func TestMigrateSealedToUnsealed(t *testing.T) {
	srcDir, dstDir := t.TempDir(), t.TempDir()
	writeFSKeys(t, srcDir, map[string][]byte{"k": []byte("v")})
	setMigrateHooks(t, func() {
		migrateHooks.source = func(s keystore.Store) keystore.Store { return sealedStore{s} }
	})
	from, to := fsStoreConfig(t, srcDir), fsStoreConfig(t, dstDir)
	code, stdout, stderr := migrateCmd(t.Context(), "--merge", "--from", from, "--to", to)
	want := "kes: error: the source key store is sealed and the target is not: its keys would be stored unsealed\n" +
		"kes: hint: pass --force to store them unsealed anyway; --force also replaces keys whose value in the target differs\n"
	if code != 1 || stdout != "" || stderr != want {
		t.Errorf("kes migrate = %d, stdout %q, stderr %q; want 1, nothing, %q", code, stdout, stderr, want)
	}
	if got := readFSKeys(t, dstDir); len(got) != 0 {
		t.Errorf("the refused migration created %d keys", len(got))
	}

	code, stdout, stderr = migrateCmd(t.Context(), "--force", "--from", from, "--to", to)
	if code != 0 || stdout != "Migrated 1 keys successfully!\n" || stderr != "" {
		t.Errorf("kes migrate --force = %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}
