// Package fs implements a [keystore.Store] that keeps each key in a file of
// one directory, with the on-disk layout of the original KES server, so a
// directory written by either server can be used by the other: one regular
// file per key, named exactly like the key, mode 0600, holding the stored
// value byte for byte.
//
// Create writes the value to a temporary file in the same directory (its
// name starts with '.', which no key name can), syncs it and hard-links it
// to the key's name. link(2) fails if the name exists, which makes Create
// an atomic create-if-absent, and a crash never leaves a partly written
// file under a key's name; a leftover temporary file is ignored.
//
// The settings of keystore.fs ([Config]), with its optional seal section
// (package keystore/seal), are described in docs/config.md#keystorefs.
package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/openkes/openkes/keystore"
	"github.com/openkes/openkes/keystore/seal"
)

// MaxValueSize is the largest value the store accepts and returns: 1 MiB,
// as in the original. Stored keys are a few hundred bytes.
const MaxValueSize = 1 << 20

// tempPrefix starts the names of temporary files. The leading '.' keeps
// them apart from key names (see validName).
const tempPrefix = ".tmp-"

// Config is the "keystore.fs" section of the config file.
type Config struct {
	// Path is the directory that holds the keys. It is created, with its
	// parents and mode 0755, if it does not exist.
	Path string `yaml:"path"`

	// Seal, if set, encrypts every stored value with a key-encryption
	// key (see package keystore/seal).
	Seal *seal.Config `yaml:"seal"`
}

var _ keystore.Config = (*Config)(nil)

// NewConfig returns an empty Config, for keystore.Register, which
// keystore/all calls: importing this package registers nothing.
func NewConfig() keystore.Config { return new(Config) }

// Validate returns an error "path: required" if Path is empty, and the
// problems of the seal section prefixed with "seal.".
func (c *Config) Validate() error {
	var errs []error
	if c.Path == "" {
		errs = append(errs, errors.New("path: required"))
	}
	if c.Seal != nil {
		errs = append(errs, seal.PrefixErrors(c.Seal.Validate()))
	}
	return errors.Join(errs...)
}

// Connect opens the store at c.Path as [New] does and returns its errors,
// wrapped by the seal if one is configured.
func (c *Config) Connect(ctx context.Context, log *slog.Logger) (keystore.Store, error) {
	if err := keystore.Prepare(ctx, "fs", c); err != nil {
		return nil, err
	}
	s, err := New(c.Path)
	if err != nil {
		return nil, err
	}
	return c.Seal.Wrap(ctx, s, log)
}

// Store is a key store in a directory of the local filesystem. It is safe
// for concurrent use, also by several processes (for example several KES
// servers) sharing the directory.
type Store struct {
	dir string

	// link is os.Link; tests replace it to reach error paths that cannot
	// be provoked from the outside when running as root.
	link func(oldname, newname string) error
}

var _ keystore.Store = (*Store)(nil)

// New opens the key store in directory dir, creating the directory (mode
// 0755, with its parents) if it does not exist. It returns an error
// "fs: '<dir>' is not a directory" if dir exists and is not a directory,
// and the *os.PathError of a failed creation or stat.
func New(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("fs: empty path")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		// MkdirAll reports ENOTDIR for an existing file; say it plainly.
		if fi, statErr := os.Stat(dir); statErr == nil && !fi.IsDir() {
			return nil, fmt.Errorf("fs: '%s' is not a directory", dir)
		}
		return nil, fmt.Errorf("fs: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("fs: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("fs: '%s' is not a directory", dir)
	}
	return &Store{dir: dir, link: os.Link}, nil
}

// String returns "Filesystem: <path>", the name shown in the start-up
// banner.
func (s *Store) String() string { return "Filesystem: " + s.dir }

// validName reports whether name can be used as a file name in the
// directory: not empty, no path separators, and no '.' at all, so no name
// can be ".", "..", a temporary file or something with an extension.
// Server-side name rules (docs/api.md#names-and-patterns) are stricter; this is defence in depth
// for callers that bypass the server (kes migrate, library users).
func validName(name string) bool {
	return name != "" && !strings.ContainsAny(name, "/\\.")
}

func checkName(op, name string) error {
	if !validName(name) {
		return fmt.Errorf("fs: %s %q: invalid key name", op, name)
	}
	return nil
}

// Create stores value in a new file named name, atomically and only if no
// such file exists: the value is written and synced to a temporary file
// that is then hard-linked to name. It returns an error wrapping
// [keystore.ErrExists] if name exists, a plain error for an invalid name
// (empty, or containing '/', '\' or '.') or for a value larger than
// [MaxValueSize], ctx.Err() if ctx is done, and the I/O error otherwise.
// No file is left under name on failure, and the temporary file is
// removed.
//
// An error from syncing the directory after the link is returned although
// the key then exists: its durability is not known.
func (s *Store) Create(ctx context.Context, name string, value []byte) error {
	return s.write(ctx, "create", name, value, func(tmp, path string) error {
		if err := s.link(tmp, path); err != nil {
			if errors.Is(err, os.ErrExist) {
				return keystore.ErrExists
			}
			return err
		}
		return nil
	})
}

// Replace atomically replaces the value of the existing key name: the new
// value is written to a temporary file, synced and renamed over the old
// one, so a reader sees either the old or the new value, never a mix, and
// a crash loses neither. It returns an error wrapping
// [keystore.ErrNotFound] if there is no key name. (A Delete of name racing
// a Replace may be undone by it.)
func (s *Store) Replace(ctx context.Context, name string, value []byte) error {
	return s.write(ctx, "replace", name, value, func(tmp, path string) error {
		if _, err := os.Lstat(path); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return keystore.ErrNotFound
			}
			return err
		}
		return os.Rename(tmp, path)
	})
}

// write writes value to a synced temporary file, calls install to move it
// to the key's path, syncs the directory and removes the temporary name.
func (s *Store) write(ctx context.Context, op, name string, value []byte, install func(tmp, path string) error) (err error) {
	if err := checkName(op, name); err != nil {
		return err
	}
	if len(value) > MaxValueSize {
		return fmt.Errorf("fs: %s %q: value exceeds %d bytes", op, name, MaxValueSize)
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	// CreateTemp uses O_EXCL and mode 0600 (the final file's mode: the
	// link shares the inode).
	f, err := os.CreateTemp(s.dir, tempPrefix+"*")
	if err != nil {
		return fmt.Errorf("fs: %s %q: %w", op, name, err)
	}
	tmp := f.Name()
	defer func() {
		if f != nil {
			f.Close()
		}
		// After a successful link the key's name holds the inode, so
		// removing the temporary name is the last step of success too
		// (after a rename it is gone already). A failure here leaves a
		// stray file that List ignores.
		if rmErr := os.Remove(tmp); rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) && err != nil {
			err = errors.Join(err, fmt.Errorf("fs: remove temporary file: %w", rmErr))
		}
	}()

	if _, err := f.Write(value); err != nil {
		return fmt.Errorf("fs: %s %q: %w", op, name, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fs: %s %q: %w", op, name, err)
	}
	err = f.Close()
	f = nil
	if err != nil {
		return fmt.Errorf("fs: %s %q: %w", op, name, err)
	}

	if err := install(tmp, filepath.Join(s.dir, name)); err != nil {
		return fmt.Errorf("fs: %s %q: %w", op, name, err)
	}
	if err := syncDir(s.dir); err != nil {
		return fmt.Errorf("fs: %s %q: %w", op, name, err)
	}
	return nil
}

// Get returns the content of the file named name. It returns an error
// wrapping [keystore.ErrNotFound] if there is no such file, a plain error
// for an invalid name or a file larger than [MaxValueSize], ctx.Err() if
// ctx is done, and the I/O error otherwise.
func (s *Store) Get(ctx context.Context, name string) ([]byte, error) {
	if err := checkName("get", name); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(s.dir, name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("fs: get %q: %w", name, keystore.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("fs: get %q: %w", name, err)
	}
	defer f.Close()

	value, err := io.ReadAll(io.LimitReader(f, MaxValueSize+1))
	if err != nil {
		return nil, fmt.Errorf("fs: get %q: %w", name, err)
	}
	if len(value) > MaxValueSize {
		clear(value)
		return nil, fmt.Errorf("fs: get %q: value exceeds %d bytes", name, MaxValueSize)
	}
	return value, nil
}

// Delete removes the file named name and syncs the directory. It returns
// an error wrapping [keystore.ErrNotFound] if there is no such file, a
// plain error for an invalid name, ctx.Err() if ctx is done, and the I/O
// error otherwise.
func (s *Store) Delete(ctx context.Context, name string) error {
	if err := checkName("delete", name); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	err := os.Remove(filepath.Join(s.dir, name))
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("fs: delete %q: %w", name, keystore.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("fs: delete %q: %w", name, err)
	}
	if err := syncDir(s.dir); err != nil {
		return fmt.Errorf("fs: delete %q: %w", name, err)
	}
	return nil
}

// List returns the sorted names of the regular files in the directory that
// start with prefix and are valid key names, paged by n as described at
// [keystore.Store.List]. Temporary files, subdirectories, symbolic links
// and files whose names contain '.' are skipped. It returns ctx.Err() if
// ctx is done and the error of reading the directory otherwise.
func (s *Store) List(ctx context.Context, prefix string, n int) ([]string, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, "", fmt.Errorf("fs: list: %w", err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if e.Type().IsRegular() && validName(e.Name()) && strings.HasPrefix(e.Name(), prefix) {
			names = append(names, e.Name())
		}
	}
	page, next := keystore.Page(names, prefix, n)
	return page, next, nil
}

// Status stats the directory and reports how long that took. It returns an
// error wrapping *[keystore.UnreachableError] if the directory cannot be
// stat'ed or is no longer a directory, and ctx.Err() if ctx is done.
func (s *Store) Status(ctx context.Context) (keystore.State, error) {
	if err := ctx.Err(); err != nil {
		return keystore.State{}, err
	}
	start := time.Now()
	fi, err := os.Stat(s.dir)
	if err != nil {
		return keystore.State{}, &keystore.UnreachableError{Err: fmt.Errorf("fs: %w", err)}
	}
	if !fi.IsDir() {
		return keystore.State{}, &keystore.UnreachableError{Err: fmt.Errorf("fs: '%s' is not a directory", s.dir)}
	}
	// A directory that exists is not enough: key operations list it and
	// read its files. A directory or key file that cannot be read (mode
	// 000, a failing disk) makes the store unusable, so Status says so
	// (a plain error: /v1/ready answers 502) instead of "reachable".
	if err := probeDir(s.dir); err != nil {
		return keystore.State{}, err
	}
	return keystore.State{Latency: time.Since(start)}, nil
}

// probeDir lists a few entries of dir and reads the first byte of the
// first key file among them.
func probeDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("fs: cannot list keys: %w", err)
	}
	defer d.Close()
	entries, err := d.ReadDir(8)
	if err != nil && err != io.EOF {
		return fmt.Errorf("fs: cannot list keys: %w", err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			return fmt.Errorf("fs: cannot read keys: %w", err)
		}
		_, err = f.Read(make([]byte, 1))
		f.Close()
		if err != nil && err != io.EOF {
			return fmt.Errorf("fs: cannot read keys: %w", err)
		}
		break
	}
	return nil
}

// Close does nothing: the store holds no open files between calls. It
// never fails.
func (s *Store) Close() error { return nil }

// syncDir makes a new or removed directory entry durable.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		// Directories cannot be opened for syncing on Windows; NTFS
		// journals the metadata change itself.
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if closeErr := d.Close(); err == nil {
		err = closeErr
	}
	return err
}
