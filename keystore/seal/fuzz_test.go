package seal_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/openkes/openkes/keystore/mem"
	"github.com/openkes/openkes/keystore/seal"
)

// FuzzUnseal feeds arbitrary stored values to a sealed store's Get: an
// etcd cluster or a directory is not trusted. Get must not panic; a value
// that is not sealed is refused with an *UnsealedError, and comes back
// unchanged with AllowUnsealed; a sealed one either unseals to what was
// sealed or fails with ErrUnseal.
func FuzzUnseal(f *testing.F) {
	kek, err := seal.NewLocalKEK(bytes.Repeat([]byte{9}, 32))
	if err != nil {
		f.Fatal(err)
	}
	inner := mem.New()
	st := seal.Wrap(inner, kek)
	if err := st.Create(f.Context(), "seed", []byte("a value")); err != nil {
		f.Fatal(err)
	}
	sealed, _ := inner.Get(f.Context(), "seed")
	f.Add(sealed)
	f.Add([]byte("kes:sealed:v1:" + kek.ID() + ":"))
	f.Add([]byte("kes:sealed:v1::AAAA"))
	f.Add([]byte("kes:sealed:"))
	f.Add([]byte(`{"bytes":"AAAA"}`))
	f.Fuzz(func(t *testing.T, value []byte) {
		inner := mem.New()
		if err := inner.Create(t.Context(), "seed", value); err != nil {
			t.Fatal(err)
		}
		st := seal.Wrap(inner, kek)
		got, err := st.Get(t.Context(), "seed")
		switch {
		case !seal.IsSealed(value):
			var u *seal.UnsealedError
			if !errors.As(err, &u) || got != nil {
				t.Fatalf("Get of an unsealed value = %q, %v; want an *UnsealedError", got, err)
			}
			if got, err := st.Get(seal.AllowUnsealed(t.Context()), "seed"); err != nil || !bytes.Equal(got, value) {
				t.Fatalf("Get with AllowUnsealed of an unsealed value = %q, %v; want it unchanged", got, err)
			}
		case err != nil:
			if !errors.Is(err, seal.ErrUnseal) {
				t.Fatalf("Get = %v, want an error wrapping ErrUnseal", err)
			}
		case string(got) != "a value":
			// Only a sealing of the seed's value (in this or another
			// fuzzing process, with its own nonce) can be authentic.
			t.Fatalf("Get of %q unsealed to %q", value, got)
		}
	})
}
