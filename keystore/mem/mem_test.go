package mem_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/openkes/openkes/keystore"
	"github.com/openkes/openkes/keystore/keystoretest"
	"github.com/openkes/openkes/keystore/mem"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	keystoretest.Run(t, func(*testing.T) keystore.Store { return mem.New() })
}

func TestStatusLatency(t *testing.T) {
	t.Parallel()
	state, err := mem.New().Status(t.Context())
	if err != nil {
		t.Fatalf("Status() = %v, want nil", err)
	}
	if state.Latency != time.Millisecond {
		t.Errorf("Status() latency = %v, want %v", state.Latency, time.Millisecond)
	}
}

func TestString(t *testing.T) {
	t.Parallel()
	if got, want := fmt.Sprint(mem.New()), "In Memory"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestCloseClears(t *testing.T) {
	t.Parallel()
	s := mem.New()
	if err := s.Create(t.Context(), "my-key", []byte("value")); err != nil {
		t.Fatalf("Create() = %v, want nil", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close() = %v, want nil", err)
	}
	names, _, err := s.List(t.Context(), "", 0)
	if err != nil || len(names) != 0 {
		t.Errorf("List() after Close = %q, %v; want no names, nil", names, err)
	}
}

func BenchmarkGet(b *testing.B) {
	s := mem.New()
	value := make([]byte, 208)
	if err := s.Create(b.Context(), "my-key", value); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Get(b.Context(), "my-key"); err != nil {
			b.Fatal(err)
		}
	}
}
