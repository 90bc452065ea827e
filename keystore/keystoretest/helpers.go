package keystoretest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openkes/openkes/keystore"
)

// LogBuffer collects the log output of concurrent goroutines. Its zero
// value is ready to use.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Logger returns a debug-level text logger writing to b, or one that
// discards its records if b is nil.
func Logger(b *LogBuffer) *slog.Logger {
	if b == nil {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// Eventually calls f until it returns nil, pausing 20 ms between calls,
// and fails t with f's last error if d passes first.
func Eventually(t testing.TB, d time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// WaitUntil is Eventually for a condition: it fails t with "timed out
// waiting for what" if cond is not true within 10 s.
func WaitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	Eventually(t, 10*time.Second, func() error {
		if !cond() {
			return errors.New("timed out waiting for " + what)
		}
		return nil
	})
}

// WriteFile writes data to a file named name in a new temporary
// directory of t and returns its path, e.g. for a tls.ca setting.
func WriteFile(t testing.TB, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Faults is the fault injection of a fake service.
type Faults interface {
	// SetDown makes the service drop every connection (true) or serve
	// again.
	SetDown(down bool)
	// SetThrottle makes the service answer every request with code; 0
	// serves again.
	SetThrottle(code int)
}

// CheckOutage takes f down, opens a store with open (which logs to
// logs) and checks it: Status and Create fail with an UnreachableError;
// once the service is up, Create succeeds; while the service answers 429
// or 503, Get and Status fail with an UnreachableError, and afterwards
// Get returns the value again. The store is closed when t ends.
// CheckOutage returns the texts of the errors seen and the log output,
// for the caller to check that they leak no credentials.
func CheckOutage(t *testing.T, f Faults, open func(logs *LogBuffer) keystore.Store) []string {
	t.Helper()
	f.SetDown(true)
	logs := &LogBuffer{}
	st := open(logs)
	t.Cleanup(func() { st.Close() })
	ctx := t.Context()
	var errs []string
	if _, err := st.Status(ctx); !keystore.IsUnreachable(err) {
		t.Errorf("Status while down = %v, want an UnreachableError", err)
	}
	if err := st.Create(ctx, "k", []byte("v")); !keystore.IsUnreachable(err) {
		t.Errorf("Create while down = %v, want an UnreachableError", err)
	} else {
		errs = append(errs, err.Error())
	}
	f.SetDown(false)
	Eventually(t, 30*time.Second, func() error { return st.Create(ctx, "k", []byte("v")) })
	for _, code := range []int{http.StatusTooManyRequests, http.StatusServiceUnavailable} {
		f.SetThrottle(code)
		_, err := st.Get(ctx, "k")
		if !keystore.IsUnreachable(err) {
			t.Errorf("Get while answering %d = %v, want an UnreachableError", code, err)
		}
		if _, err := st.Status(ctx); !keystore.IsUnreachable(err) {
			t.Errorf("Status while answering %d = %v, want an UnreachableError", code, err)
		}
		f.SetThrottle(0)
		if err != nil {
			errs = append(errs, err.Error())
		}
		if v, err := st.Get(ctx, "k"); err != nil || string(v) != "v" {
			t.Errorf("Get after throttling = %q, %v", v, err)
		}
	}
	return append(errs, logs.String())
}

// CheckLive checks the contract on one name of a live service whose
// other entries it must leave alone (so the conformance suite, which
// needs an empty store, cannot run): Create, a second Create
// (ErrExists), Get, a List of the name as prefix, Delete, and Get after
// Delete (ErrNotFound). The name is kes-test-<n>; it is deleted
// afterwards in any case. CheckLive connects with conf and closes the
// store at the end.
func CheckLive(t *testing.T, conf keystore.Config) {
	t.Helper()
	st, err := conf.Connect(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	name := fmt.Sprintf("kes-test-%d", time.Now().UnixNano())
	if err := st.Create(t.Context(), name, []byte("value")); err != nil {
		t.Fatal(err)
	}
	defer st.Delete(context.Background(), name)
	if err := st.Create(t.Context(), name, []byte("value")); !errors.Is(err, keystore.ErrExists) {
		t.Errorf("second Create = %v, want %v", err, keystore.ErrExists)
	}
	if v, err := st.Get(t.Context(), name); err != nil || string(v) != "value" {
		t.Errorf("Get = %q, %v", v, err)
	}
	names, _, err := st.List(t.Context(), name, 0)
	if err != nil || len(names) != 1 || names[0] != name {
		t.Errorf("List = %q, %v", names, err)
	}
	if err := st.Delete(t.Context(), name); err != nil {
		t.Error(err)
	}
	if _, err := st.Get(t.Context(), name); !errors.Is(err, keystore.ErrNotFound) {
		t.Errorf("Get after Delete = %v, want %v", err, keystore.ErrNotFound)
	}
}

// RealEnv returns the values of the environment variables names, which
// point a test at a real service, and skips t unless all of them are set.
func RealEnv(t testing.TB, names ...string) []string {
	t.Helper()
	values := make([]string, len(names))
	for i, name := range names {
		if values[i] = os.Getenv(name); values[i] == "" {
			t.Skipf("%s not set: skipping the test against the real service", strings.Join(names, ", "))
		}
	}
	return values
}

// GoList runs "go list" with args in dir (relative to the test's
// package directory) and returns the lines of its output. It fails t if
// there is no go command or it fails.
func GoList(t testing.TB, dir string, args ...string) []string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed: %v", err)
	}
	cmd := exec.CommandContext(t.Context(), gobin, append([]string{"list"}, args...)...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %q: %v", args, err)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

// CheckNoSecrets fails t if one of texts (log output, error messages)
// contains one of secrets; empty secrets are ignored. The failure names
// the secret's length only.
func CheckNoSecrets(t testing.TB, texts []string, secrets ...string) {
	t.Helper()
	for i, text := range texts {
		for _, s := range secrets {
			if s != "" && strings.Contains(text, s) {
				t.Errorf("a credential (%d bytes) leaked into text %d of %d (logs or errors)", len(s), i+1, len(texts))
			}
		}
	}
}

// Concurrently calls f(i) for every i in [0, n), each in its own
// goroutine, all released at once, and returns their errors by i.
func Concurrently(n int, f func(i int) error) []error {
	var (
		start = make(chan struct{})
		errs  = make([]error, n)
		wg    sync.WaitGroup
	)
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = f(i)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

// RaceCreate runs n Creates of one name at once, create(i) for every i
// in [0, n), and fails t if more than one succeeds or a losing one fails
// with an error that does not wrap keystore.ErrExists. It returns the
// winner's i, or -1 if no Create succeeded. what names the race in
// failures.
func RaceCreate(t testing.TB, what string, n int, create func(i int) error) (winner int) {
	t.Helper()
	winner = -1
	for i, err := range Concurrently(n, create) {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("%s: Create succeeded in %d and %d, want at most one success", what, winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, keystore.ErrExists):
			t.Errorf("%s: losing Create %d = %v, want an error wrapping %v", what, i, err, keystore.ErrExists)
		}
	}
	return winner
}

// LiveNames returns a random prefix, base-<12 hex digits>-, and the names
// prefix+suffix for each of suffixes, for a test on a live service that
// must not touch other entries. The names are deleted from st when t
// ends.
func LiveNames(t testing.TB, st keystore.Store, base string, suffixes ...string) (prefix string, names []string) {
	var r [6]byte
	rand.Read(r[:])
	prefix = base + "-" + hex.EncodeToString(r[:]) + "-"
	for _, s := range suffixes {
		names = append(names, prefix+s)
	}
	t.Cleanup(func() {
		for _, name := range names {
			st.Delete(context.Background(), name)
		}
	})
	return prefix, names
}

// CheckCreateGet checks Status, and then for every name: Create with
// value(name) (t fails at once if it fails), a second Create (ErrExists)
// and Get (the value).
func CheckCreateGet(t testing.TB, st keystore.Store, names []string, value func(name string) []byte) {
	t.Helper()
	ctx := t.Context()
	if _, err := st.Status(ctx); err != nil {
		t.Fatalf("Status() = %v", err)
	}
	for _, name := range names {
		v := value(name)
		if err := st.Create(ctx, name, v); err != nil {
			t.Fatalf("Create(%q) = %v", name, err)
		}
		if err := st.Create(ctx, name, []byte("other")); !errors.Is(err, keystore.ErrExists) {
			t.Errorf("second Create(%q) = %v, want %v", name, err, keystore.ErrExists)
		}
		if got, err := st.Get(ctx, name); err != nil || !bytes.Equal(got, v) {
			t.Errorf("Get(%q) = %x, %v; want %x", name, got, err, v)
		}
	}
}

// Fixtures returns the key files the original KES server wrote, by file
// name (which is the key name), from testdata/kes-fixtures/keystore of
// the module. It fails t if there are none.
func Fixtures(t testing.TB) map[string][]byte {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("keystoretest: no go.mod above the working directory")
		}
		dir = parent
	}
	dir = filepath.Join(dir, "testdata", "kes-fixtures", "keystore")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = data
	}
	if len(files) == 0 {
		t.Fatalf("keystoretest: no key files in %s", dir)
	}
	return files
}

// CreateKeys creates the keys key-00, key-01, … up to n, with value "v",
// pausing for pause after each, and fails t at once if a Create fails.
// It returns the names. A pause spreads the Creates over the lifetime of
// short-lived credentials.
func CreateKeys(t testing.TB, st keystore.Store, n int, pause time.Duration) []string {
	t.Helper()
	names := make([]string, n)
	for i := range n {
		names[i] = fmt.Sprintf("key-%02d", i)
		if err := st.Create(t.Context(), names[i], []byte("v")); err != nil {
			t.Fatalf("Create(%q) = %v", names[i], err)
		}
		time.Sleep(pause)
	}
	return names
}

// ErrorLines returns the lines of err's message, for comparing what
// errors.Join joined (as Validate returns it) with a list; nil for nil.
func ErrorLines(err error) []string {
	if err == nil {
		return nil
	}
	return strings.Split(err.Error(), "\n")
}

// CheckValidate fails t unless the lines of conf.Validate()'s error are
// want (nil: no error) and returns the error, for further checks.
func CheckValidate(t testing.TB, conf interface{ Validate() error }, want []string) error {
	t.Helper()
	err := conf.Validate()
	if got := ErrorLines(err); !slices.Equal(got, want) {
		t.Errorf("Validate() = %q, want %q", got, want)
	}
	return err
}

// CheckErr is for the cases of a table test that either fail with an
// error containing want or succeed. With want "" it fails t at once if
// err is not nil and returns false: the caller goes on to check the
// result. Otherwise it fails t at once unless err contains want and
// returns true: the case is done. what names the call, as in "New()".
func CheckErr(t testing.TB, what string, err error, want string) (done bool) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("%s = %v, want nil", what, err)
		}
		return false
	}
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("%s = %v, want an error containing %q", what, err, want)
	}
	return true
}

// CheckErrLines is for the cases of a config table test that either
// fail with the lines of an errors.Join or succeed. With want nil it
// fails t at once if err is not nil and returns false: the caller goes
// on to check the result. Otherwise it fails t at once unless the lines
// of err are want (in any order if anyOrder) and returns true: the case
// is done. what names the call, as in "Parse()".
func CheckErrLines(t testing.TB, what string, err error, want []string, anyOrder bool) (done bool) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("%s = %v", what, err)
		}
		return false
	}
	if err == nil {
		t.Fatalf("%s = nil error, want %q", what, want)
	}
	got := strings.Split(err.Error(), "\n")
	if anyOrder {
		got, want = slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("%s error =\n%s\nwant\n%s", what, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	return true
}
