package fs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/openkes/openkes/keystore"
	"github.com/openkes/openkes/keystore/keystoretest"
	"github.com/openkes/openkes/keystore/seal"
)

// fixtures holds key files written by the original KES server.
const fixtures = "../../testdata/kes-fixtures/keystore"

func newStore(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := New(dir)
	if err != nil {
		t.Fatalf("New(%q) = %v, want nil", dir, err)
	}
	return s
}

// tempFiles returns the names in dir that start with the temporary prefix.
func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	return names
}

func TestConformance(t *testing.T) {
	t.Parallel()
	keystoretest.Run(t, func(t *testing.T) keystore.Store {
		return newStore(t, t.TempDir())
	})
}

func TestValidName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		key   string
		valid bool
	}{
		{name: "empty", key: ""},
		{name: "dot", key: "."},
		{name: "dot-dot", key: ".."},
		{name: "leading-dot", key: ".my-key"},
		{name: "inner-dot", key: "my.key"},
		{name: "leading-slash", key: "/my-key"},
		{name: "leading-backslash", key: `\my-key`},
		{name: "trailing-slash", key: "my-key/"},
		{name: "inner-slash", key: "my/key"},
		{name: "relative", key: "./my-key"},
		{name: "relative-parent", key: "./../my-key"},
		{name: "temp-file", key: tempPrefix + "123"},
		{name: "valid", key: "my-key", valid: true},
		{name: "valid-alphabet", key: "ABC_xyz-019", valid: true},
	}
	s := newStore(t, t.TempDir())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := validName(tt.key); got != tt.valid {
				t.Fatalf("validName(%q) = %t, want %t", tt.key, got, tt.valid)
			}
			if tt.valid {
				return
			}
			// Invalid names are a plain error from every operation, never
			// "not found" or "exists", and touch nothing on disk.
			ctx := t.Context()
			errs := map[string]error{"Create": s.Create(ctx, tt.key, []byte("value"))}
			_, errs["Get"] = s.Get(ctx, tt.key)
			errs["Delete"] = s.Delete(ctx, tt.key)
			for op, err := range errs {
				if err == nil || errors.Is(err, keystore.ErrNotFound) || errors.Is(err, keystore.ErrExists) {
					t.Errorf("%s(%q) = %v, want a plain error", op, tt.key, err)
				}
			}
		})
	}
}

func TestOnDisk(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := newStore(t, dir)
	value := []byte("CiQKIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f")
	if err := s.Create(t.Context(), "my-key", value); err != nil {
		t.Fatalf("Create() = %v, want nil", err)
	}

	path := filepath.Join(dir, "my-key")
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode of %s = %v, want a regular file with mode 0600", path, fi.Mode())
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, value) {
		t.Errorf("content of %s = %q, want %q", path, got, value)
	}
	if tmp := tempFiles(t, dir); len(tmp) != 0 {
		t.Errorf("temporary files left after Create: %q", tmp)
	}

	if err := s.Delete(t.Context(), "my-key"); err != nil {
		t.Fatalf("Delete() = %v, want nil", err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Lstat(%s) after Delete = %v, want not exist", path, err)
	}
}

// TestOriginalFixtures reads a directory written by the original server.
func TestOriginalFixtures(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	want := keystoretest.Fixtures(t)
	for name, b := range want {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	s := newStore(t, dir)
	names, next, err := s.List(t.Context(), "", 0)
	if err != nil {
		t.Fatalf("List() = %v, want nil", err)
	}
	wantNames := []string{"fixture-aes-imported", "fixture-chacha-imported", "fixture-generated", "fixture-legacy-json"}
	if diff := cmp.Diff(wantNames, names); diff != "" || next != "" {
		t.Fatalf("List() = _, %q; names mismatch (-want +got):\n%s", next, diff)
	}
	for _, name := range names {
		got, err := s.Get(t.Context(), name)
		if err != nil {
			t.Fatalf("Get(%q) = %v, want nil", name, err)
		}
		if !bytes.Equal(got, want[name]) {
			t.Errorf("Get(%q) = %q, want %q", name, got, want[name])
		}
	}
	if err := s.Create(t.Context(), "fixture-generated", []byte("x")); !errors.Is(err, keystore.ErrExists) {
		t.Errorf("Create(%q) = %v, want error wrapping %v", "fixture-generated", err, keystore.ErrExists)
	}
}

// TestStrayFiles checks what a crash or an administrator may leave in the
// directory: none of it is listed, and none of it blocks a Create.
func TestStrayFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := newStore(t, dir)
	for _, name := range []string{tempPrefix + "1234567", ".my-key", "my-key.bak"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("half-writ"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "subdir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("my-key.bak", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}

	names, _, err := s.List(t.Context(), "", 0)
	if err != nil || len(names) != 0 {
		t.Fatalf("List() = %q, %v; want no names, nil", names, err)
	}
	if err := s.Create(t.Context(), "my-key", []byte("value")); err != nil {
		t.Fatalf("Create(%q) = %v, want nil", "my-key", err)
	}
	names, _, err = s.List(t.Context(), "", 0)
	if diff := cmp.Diff([]string{"my-key"}, names); diff != "" || err != nil {
		t.Fatalf("List() = _, _, %v; names mismatch (-want +got):\n%s", err, diff)
	}
}

func TestStatusUnreachable(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "keys")
	s := newStore(t, dir)
	if _, err := s.Status(t.Context()); err != nil {
		t.Fatalf("Status() = %v, want nil", err)
	}
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Status(t.Context()); !keystore.IsUnreachable(err) {
		t.Fatalf("Status() after removing the directory = %v, want an *UnreachableError", err)
	}
	// A file in its place is no better.
	if err := os.WriteFile(dir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Status(t.Context()); !keystore.IsUnreachable(err) {
		t.Fatalf("Status() with a file in place of the directory = %v, want an *UnreachableError", err)
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	file := filepath.Join(root, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		dir     string
		wantErr string // empty: success
	}{
		{name: "existing", dir: root},
		{name: "missing-with-parents", dir: filepath.Join(root, "a", "b", "c")},
		{name: "file", dir: file, wantErr: fmt.Sprintf("fs: '%s' is not a directory", file)},
		{name: "below-file", dir: filepath.Join(file, "keys"), wantErr: "not a directory"},
		{name: "empty", dir: "", wantErr: "fs: empty path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := New(tt.dir)
			if keystoretest.CheckErr(t, fmt.Sprintf("New(%q)", tt.dir), err, tt.wantErr) {
				return
			}
			fi, err := os.Stat(tt.dir)
			if err != nil || !fi.IsDir() {
				t.Fatalf("Stat(%q) after New = %v, %v; want a directory", tt.dir, fi, err)
			}
			if got, want := s.String(), "Filesystem: "+tt.dir; got != want {
				t.Errorf("String() = %q, want %q", got, want)
			}
		})
	}
}

func TestNewDirMode(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "keys")
	newStore(t, dir)
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	// 0755 minus whatever the umask removes; never more.
	if perm := fi.Mode().Perm(); perm&^0o755 != 0 || perm&0o700 != 0o700 {
		t.Errorf("mode of a created directory = %v, want 0755 (less umask)", perm)
	}
}

// TestNotFoundWraps checks that "not found" keeps its context.
func TestNotFoundWraps(t *testing.T) {
	t.Parallel()
	s := newStore(t, t.TempDir())
	_, err := s.Get(t.Context(), "my-key")
	if !errors.Is(err, keystore.ErrNotFound) || !strings.Contains(err.Error(), `"my-key"`) {
		t.Fatalf("Get() = %v, want an error wrapping %v that names the key", err, keystore.ErrNotFound)
	}
}

func TestCreateCleanup(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		link    func(oldname, newname string) error
		value   []byte
		wantErr error // checked with errors.Is; nil: any error
	}{
		{name: "exists", link: os.Link, value: []byte("new"), wantErr: keystore.ErrExists},
		{name: "link-fails", link: func(string, string) error {
			return &os.LinkError{Op: "link", Err: syscall.EIO}
		}, value: []byte("new"), wantErr: syscall.EIO},
		{name: "too-large", link: os.Link, value: make([]byte, MaxValueSize+1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			s := newStore(t, dir)
			if err := s.Create(t.Context(), "existing", []byte("old")); err != nil {
				t.Fatal(err)
			}
			s.link = tt.link

			name := "my-key"
			if tt.wantErr == keystore.ErrExists {
				name = "existing"
			}
			err := s.Create(t.Context(), name, tt.value)
			if err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
				t.Fatalf("Create(%q) = %v, want error wrapping %v", name, err, tt.wantErr)
			}
			if tmp := tempFiles(t, dir); len(tmp) != 0 {
				t.Errorf("temporary files left after a failed Create: %q", tmp)
			}
			names, _, err := s.List(t.Context(), "", 0)
			if diff := cmp.Diff([]string{"existing"}, names); diff != "" || err != nil {
				t.Errorf("List() after a failed Create = _, _, %v; mismatch (-want +got):\n%s", err, diff)
			}
			s.link = os.Link
			got, err := s.Get(t.Context(), "existing")
			if err != nil || string(got) != "old" {
				t.Errorf("Get(%q) = %q, %v; want %q, nil", "existing", got, err, "old")
			}
		})
	}
}

func TestCreateMissingDir(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "keys")
	s := newStore(t, dir)
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	err := s.Create(t.Context(), "my-key", []byte("value"))
	if err == nil || errors.Is(err, keystore.ErrExists) {
		t.Fatalf("Create() in a removed directory = %v, want an I/O error", err)
	}
	if _, _, err := s.List(t.Context(), "", 0); err == nil {
		t.Fatalf("List() of a removed directory = nil, want an error")
	}
}

func TestGetTooLarge(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := newStore(t, dir)
	tests := []struct {
		name    string
		size    int
		wantErr bool
	}{
		{name: "max", size: MaxValueSize},
		{name: "max+1", size: MaxValueSize + 1, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			key := fmt.Sprint("key-", tt.size)
			if err := os.WriteFile(filepath.Join(dir, key), make([]byte, tt.size), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := s.Get(t.Context(), key)
			if tt.wantErr {
				if err == nil || errors.Is(err, keystore.ErrNotFound) {
					t.Fatalf("Get() of %d bytes = %v, want a plain error", tt.size, err)
				}
				return
			}
			if err != nil || len(got) != tt.size {
				t.Fatalf("Get() of %d bytes = %d bytes, %v; want all, nil", tt.size, len(got), err)
			}
		})
	}
}

func TestCanceledContext(t *testing.T) {
	t.Parallel()
	s := newStore(t, t.TempDir())
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Create(ctx, "my-key", []byte("value")); !errors.Is(err, context.Canceled) {
		t.Errorf("Create() = %v, want %v", err, context.Canceled)
	}
	if _, err := s.Get(ctx, "my-key"); !errors.Is(err, context.Canceled) {
		t.Errorf("Get() = %v, want %v", err, context.Canceled)
	}
	if names, _, err := s.List(t.Context(), "", 0); err != nil || len(names) != 0 {
		t.Errorf("List() after canceled Create = %q, %v; want no names", names, err)
	}
}

func TestConfig(t *testing.T) {
	t.Parallel()
	conf, ok := NewConfig().(*Config)
	if !ok {
		t.Fatalf(`NewConfig() = %T, want *fs.Config`, NewConfig())
	}
	if err := conf.Validate(); err == nil || err.Error() != "path: required" {
		t.Errorf("Validate() of an empty config = %v, want %q", err, "path: required")
	}
	if _, err := conf.Connect(t.Context(), nil); err == nil {
		t.Errorf("Connect() of an empty config = nil, want an error")
	}

	conf.Path = filepath.Join(t.TempDir(), "keys")
	if err := conf.Validate(); err != nil {
		t.Errorf("Validate() = %v, want nil", err)
	}
	st, err := conf.Connect(t.Context(), nil)
	if err != nil {
		t.Fatalf("Connect() = %v, want nil", err)
	}
	defer st.Close()
	if got, want := fmt.Sprint(st), "Filesystem: "+conf.Path; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if _, err := os.Stat(conf.Path); err != nil {
		t.Errorf("Stat(%q) after Connect = %v, want nil", conf.Path, err)
	}
}

func BenchmarkGet(b *testing.B) {
	s, err := New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Create(b.Context(), "my-key", bytes.Repeat([]byte("A"), 208)); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Get(b.Context(), "my-key"); err != nil {
			b.Fatal(err)
		}
	}
}

func TestReplace(t *testing.T) {
	dir := t.TempDir()
	s, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := s.Replace(ctx, "missing", []byte("v")); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("Replace of a missing key = %v, want ErrNotFound", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("Replace of a missing key created it")
	}
	if err := s.Create(ctx, "k", []byte("old")); err != nil {
		t.Fatal(err)
	}
	if err := s.Replace(ctx, "k", []byte("new")); err != nil {
		t.Fatalf("Replace = %v", err)
	}
	got, err := s.Get(ctx, "k")
	if err != nil || string(got) != "new" {
		t.Fatalf("Get after Replace = %q, %v", got, err)
	}
	fi, err := os.Stat(filepath.Join(dir, "k"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("replaced file: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory has %d entries after Replace, want 1 (no temporary file left)", len(entries))
	}
	if err := s.Replace(ctx, "../k", []byte("x")); err == nil {
		t.Error("Replace accepted an invalid name")
	}
}

// TestSealedRefusesPlantedKey plants a plain key file, as the original
// server writes them, next to the sealed files of a store with a seal
// section: the store refuses it, naming the key, so that nobody who can
// write to the directory can choose the key new data is encrypted with.
// With seal.allow_unsealed it is read, with a warning.
func TestSealedRefusesPlantedKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	kek := filepath.Join(dir, "kek")
	if err := os.WriteFile(kek, bytes.Repeat([]byte{0x17}, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join(dir, "keys")
	conf := &Config{Path: keys, Seal: &seal.Config{KEKFile: kek}}
	st, err := conf.Connect(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := t.Context()
	for _, name := range []string{"sealed-1", "sealed-2"} {
		if err := st.Create(ctx, name, []byte(`{"bytes":"c2VhbGVk"}`)); err != nil {
			t.Fatal(err)
		}
	}
	planted, err := os.ReadFile(filepath.Join(fixtures, "fixture-generated"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(keys, "planted"), planted, 0o600); err != nil {
		t.Fatal(err)
	}

	if s, ok := st.(interface{ Sealed() bool }); !ok || !s.Sealed() {
		t.Errorf("%T does not report Sealed() = true", st)
	}
	got, err := st.Get(ctx, "planted")
	var u *seal.UnsealedError
	if !errors.As(err, &u) || u.Name != "planted" || got != nil {
		t.Fatalf("Get(planted) = %q, %v; want an *seal.UnsealedError for planted", got, err)
	}
	if !strings.Contains(err.Error(), `key "planted" is stored unsealed`) || strings.Contains(err.Error(), string(planted[:20])) {
		t.Errorf("error %q does not name the key, or shows the value", err)
	}
	for _, name := range []string{"sealed-1", "sealed-2"} {
		if _, err := st.Get(ctx, name); err != nil {
			t.Errorf("Get(%s) = %v", name, err)
		}
	}

	// The migration option reads it, with one WARN line naming the key.
	var logs bytes.Buffer
	conf.Seal.AllowUnsealed = true
	migrating, err := conf.Connect(ctx, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer migrating.Close()
	if got, err := migrating.Get(ctx, "planted"); err != nil || !bytes.Equal(got, planted) {
		t.Fatalf("Get(planted) with allow_unsealed = %q, %v; want the file's content", got, err)
	}
	if line := logs.String(); strings.Count(line, "\n") != 1 || !strings.Contains(line, "level=WARN") || !strings.Contains(line, "key=planted") {
		t.Errorf("log = %q, want one WARN line naming the key", line)
	}
}
