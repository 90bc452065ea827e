package restclient

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/openkes/openkes/keystore"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	transport := errors.New("transport failure")
	tests := []struct {
		name     string
		status   int
		err      error
		outcomes Outcomes
		want     error // nil: success; errResponse: a *ResponseError
	}{
		{"transport error", 0, transport, Created, transport},
		{"created 201", http.StatusCreated, nil, Created, nil},
		{"created 200", http.StatusOK, nil, Created, nil},
		{"exists", http.StatusConflict, nil, Created, keystore.ErrExists},
		{"create refused", http.StatusForbidden, nil, Created, errResponse},
		{"found", http.StatusOK, nil, Found, nil},
		{"not found", http.StatusNotFound, nil, Found, keystore.ErrNotFound},
		{"deleted 204", http.StatusNoContent, nil, Deleted, nil},
		{"delete missing", http.StatusNotFound, nil, Deleted, keystore.ErrNotFound},
		{"ok", http.StatusOK, nil, OK, nil},
		{"ok is not 204", http.StatusNoContent, nil, OK, errResponse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := &Response{Status: tt.status, Body: []byte(`{"error":"went wrong"}`)}
			err := Check(resp, tt.err, tt.outcomes, "error")
			if tt.want == errResponse {
				var re *ResponseError
				if !errors.As(err, &re) || re.StatusCode != tt.status || re.Message != "went wrong" {
					t.Fatalf("Check = %v, want a ResponseError %d with the body's message", err, tt.status)
				}
				return
			}
			if err != tt.want {
				t.Fatalf("Check = %v, want %v", err, tt.want)
			}
		})
	}
}

// errResponse stands for a *ResponseError in TestCheck.
var errResponse = errors.New("a *ResponseError")

func TestResponseError(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		err  ResponseError
		want string
	}{
		{ResponseError{StatusCode: 401}, "401 Unauthorized"},
		{ResponseError{StatusCode: 403, Message: "no access"}, "403 Forbidden: no access"},
	} {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	const min, max = 500 * time.Millisecond, 30 * time.Second
	tests := []struct {
		n    int
		full time.Duration // the wait before jitter
	}{
		{1, min},
		{2, 2 * min},
		{4, 8 * min},
		{7, max}, // 32 * min is above max
		{40, max},
		{1000, max},
	}
	for _, tt := range tests {
		for range 20 {
			if d := Backoff(tt.n, min, max); d < tt.full/2 || d > tt.full {
				t.Fatalf("Backoff(%d) = %v, want between %v and %v", tt.n, d, tt.full/2, tt.full)
			}
		}
	}
}
