package keystoretest

import (
	"fmt"
	"strings"
	"testing"
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
