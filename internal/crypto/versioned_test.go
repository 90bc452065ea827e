package crypto

import (
	"bytes"
	"testing"
)

func TestVersioned(t *testing.T) {
	key, err := GenerateSecretKey(AES256, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := key.Encrypt([]byte("plaintext"), []byte("ctx"), nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		n      uint32
		header bool
	}{
		{1, false},
		{2, true},
		{3, true},
		{1 << 20, true},
		{MaxVersion, true},
	}
	for _, tt := range tests {
		c := AppendVersioned(nil, tt.n, raw)
		if got, want := len(c), len(raw); tt.header {
			want += VersionHeaderSize
			if got != want {
				t.Errorf("version %d: len = %d, want %d", tt.n, got, want)
			}
		} else if !bytes.Equal(c, raw) {
			t.Errorf("version 1 ciphertext changed")
		}
		n, inner, ok := SplitVersioned(c)
		if ok != tt.header {
			t.Fatalf("version %d: SplitVersioned ok = %v, want %v", tt.n, ok, tt.header)
		}
		if !ok {
			continue
		}
		if n != tt.n || !bytes.Equal(inner, raw) {
			t.Errorf("version %d: SplitVersioned = %d, %x; want %d, %x", tt.n, n, inner, tt.n, raw)
		}
		if _, err := key.Decrypt(c, []byte("ctx")); err != ErrDecrypt {
			t.Errorf("version %d: Decrypt of the whole versioned ciphertext = %v, want ErrDecrypt", tt.n, err)
		}
		if pt, err := key.Decrypt(inner, []byte("ctx")); err != nil || string(pt) != "plaintext" {
			t.Errorf("version %d: Decrypt(inner) = %q, %v", tt.n, pt, err)
		}
	}
}

func TestSplitVersionedRejects(t *testing.T) {
	body := bytes.Repeat([]byte{0xaa}, Overhead)
	tests := []struct {
		name string
		c    []byte
	}{
		{"empty", nil},
		{"magic only", []byte("KESv")},
		{"header without ciphertext", append([]byte("KESv"), 0, 0, 0, 2)},
		{"version 0", append(append([]byte("KESv"), 0, 0, 0, 0), body...)},
		{"version 1", append(append([]byte("KESv"), 0, 0, 0, 1), body...)},
		{"other magic", append(append([]byte("KESV"), 0, 0, 0, 2), body...)},
		{"short ciphertext", append(append([]byte("KESv"), 0, 0, 0, 2), body[:Overhead-1]...)},
		{"raw", body},
	}
	for _, tt := range tests {
		if n, _, ok := SplitVersioned(tt.c); ok {
			t.Errorf("%s: SplitVersioned = version %d, ok; want not ok", tt.name, n)
		}
	}
}

// FuzzSplitVersioned checks that the header parser never panics, only
// accepts what AppendVersioned writes, and that every accepted input
// round-trips.
func FuzzSplitVersioned(f *testing.F) {
	f.Add(AppendVersioned(nil, 2, bytes.Repeat([]byte{1}, Overhead)))
	f.Add(AppendVersioned(nil, MaxVersion, bytes.Repeat([]byte{1}, Overhead+5)))
	f.Add([]byte("KESv\x00\x00\x00\x01"))
	f.Add([]byte("{}"))
	f.Fuzz(func(t *testing.T, c []byte) {
		n, inner, ok := SplitVersioned(c)
		if !ok {
			return
		}
		if n < 2 || len(inner) < Overhead {
			t.Fatalf("accepted version %d with %d inner bytes", n, len(inner))
		}
		if got := AppendVersioned(nil, n, inner); !bytes.Equal(got, c) {
			t.Fatalf("AppendVersioned(SplitVersioned(c)) = %x, want %x", got, c)
		}
	})
}

// TestEncryptVersion checks that EncryptVersion writes exactly
// AppendVersioned of what Encrypt writes with the same random bytes, and
// that the ciphertext behind the header decrypts.
func TestEncryptVersion(t *testing.T) {
	key, err := GenerateSecretKey(AES256, nil)
	if err != nil {
		t.Fatal(err)
	}
	random := bytes.Repeat([]byte{7}, Overhead)
	for _, n := range []uint32{1, 2, MaxVersion} {
		want, err := key.Encrypt([]byte("plaintext"), []byte("ctx"), bytes.NewReader(random))
		if err != nil {
			t.Fatal(err)
		}
		want = AppendVersioned(nil, n, want)
		got, err := key.EncryptVersion(n, []byte("plaintext"), []byte("ctx"), bytes.NewReader(random))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("EncryptVersion(%d) = %x, want %x", n, got, want)
		}
		inner := got
		if m, c, ok := SplitVersioned(got); ok {
			if m != n {
				t.Fatalf("EncryptVersion(%d) names version %d", n, m)
			}
			inner = c
		}
		if p, err := key.Decrypt(inner, []byte("ctx")); err != nil || string(p) != "plaintext" {
			t.Fatalf("Decrypt(EncryptVersion(%d)) = %q, %v", n, p, err)
		}
	}
}
