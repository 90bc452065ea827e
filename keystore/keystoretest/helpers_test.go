package keystoretest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/openkes/openkes/keystore"
)

// recorder is a testing.TB that records failures instead of failing.
type recorder struct {
	testing.TB
	errors []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func TestCheckNoSecrets(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		texts   []string
		secrets []string
		fails   int
	}{
		{"clean", []string{"GET /v1/kv: 403 Forbidden", "level=INFO msg=login"}, []string{"s3cr3t", "tok-1"}, 0},
		{"secret in an error", []string{"ok", "login: s3cr3t refused"}, []string{"s3cr3t"}, 1},
		{"two secrets in one log", []string{"tok-1 and tok-2"}, []string{"tok-1", "tok-2", "tok-3"}, 2},
		{"empty secret ignored", []string{"anything"}, []string{""}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &recorder{TB: t}
			CheckNoSecrets(r, tt.texts, tt.secrets...)
			if len(r.errors) != tt.fails {
				t.Fatalf("CheckNoSecrets reported %q, want %d failures", r.errors, tt.fails)
			}
			for _, e := range r.errors {
				for _, s := range tt.secrets {
					if s != "" && strings.Contains(e, s) {
						t.Errorf("the failure %q shows the secret", e)
					}
				}
			}
		})
	}
}

func TestLogBuffer(t *testing.T) {
	t.Parallel()
	var b LogBuffer
	Logger(&b).Info("hello", "n", 1)
	Logger(nil).Info("discarded")
	if got := b.String(); !strings.Contains(got, "msg=hello n=1") {
		t.Errorf("LogBuffer = %q, want the record", got)
	}
}

func TestRaceCreate(t *testing.T) {
	t.Parallel()
	other := errors.New("disk full")
	tests := []struct {
		name   string
		create func(i int) error
		winner int
		fails  int
	}{
		{"one winner", func(i int) error {
			if i == 3 {
				return nil
			}
			return fmt.Errorf("create: %w", keystore.ErrExists)
		}, 3, 0},
		{"no winner", func(int) error { return keystore.ErrExists }, -1, 0},
		{"every Create wins", func(int) error { return nil }, 0, 4},
		{"a loser fails otherwise", func(i int) error {
			if i == 0 {
				return nil
			}
			if i == 2 {
				return other
			}
			return keystore.ErrExists
		}, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &recorder{TB: t}
			if got := RaceCreate(r, "race", 5, tt.create); got != tt.winner || len(r.errors) != tt.fails {
				t.Errorf("RaceCreate = %d with failures %q, want %d with %d failures", got, r.errors, tt.winner, tt.fails)
			}
		})
	}
}

func TestRealEnv(t *testing.T) {
	t.Setenv("KEYSTORETEST_A", "a")
	t.Setenv("KEYSTORETEST_B", "b")
	t.Setenv("KEYSTORETEST_UNSET", "")
	tests := []struct {
		names []string
		want  []string // nil: skipped
	}{
		{[]string{"KEYSTORETEST_A"}, []string{"a"}},
		{[]string{"KEYSTORETEST_A", "KEYSTORETEST_B"}, []string{"a", "b"}},
		{[]string{"KEYSTORETEST_A", "KEYSTORETEST_UNSET"}, nil},
	}
	for _, tt := range tests {
		var got []string
		var skipped bool
		t.Run(strings.Join(tt.names, ","), func(t *testing.T) {
			defer func() { skipped = t.Skipped() }()
			got = RealEnv(t, tt.names...)
		})
		if tt.want == nil {
			if !skipped {
				t.Errorf("RealEnv(%q) = %q, want a skip", tt.names, got)
			}
		} else if skipped || !slices.Equal(got, tt.want) {
			t.Errorf("RealEnv(%q) = %q (skipped %v), want %q", tt.names, got, skipped, tt.want)
		}
	}
}
