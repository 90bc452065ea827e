package keystore_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/openkes/openkes/keystore"
)

func TestUnjoin(t *testing.T) {
	a, b, c := errors.New("a"), errors.New("b"), errors.New("c")
	tests := []struct {
		name string
		err  error
		want []error
	}{
		{"single", a, []error{a}},
		{"joined", errors.Join(a, b), []error{a, b}},
		{"nested", errors.Join(a, errors.Join(b, c)), []error{a, b, c}},
		{"wrapped join is one", fmt.Errorf("x: %w", errors.Join(a, b)), nil},
	}
	for _, tt := range tests {
		got := keystore.Unjoin(tt.err)
		if tt.want == nil {
			tt.want = []error{tt.err}
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: Unjoin = %v, want %v", tt.name, got, tt.want)
		}
	}
}

type validateFunc func() error

func (f validateFunc) Validate() error { return f() }

func TestPrepare(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	invalid := validateFunc(func() error { return errors.New("path: required") })
	valid := validateFunc(func() error { return nil })
	tests := []struct {
		name string
		ctx  context.Context
		conf validateFunc
		want string // "" for no error
	}{
		{"valid", context.Background(), valid, ""},
		{"invalid", context.Background(), invalid, "fs: path: required"},
		{"canceled first", canceled, invalid, context.Canceled.Error()},
	}
	for _, tt := range tests {
		err := keystore.Prepare(tt.ctx, "fs", tt.conf)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: Prepare = %v, want nil", tt.name, err)
		case tt.want != "" && (err == nil || err.Error() != tt.want):
			t.Errorf("%s: Prepare = %v, want %q", tt.name, err, tt.want)
		}
	}
}
