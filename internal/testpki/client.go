package testpki

import (
	"net/http"
	"testing"
	"time"
)

// Client returns an HTTP client over tr that gives up after timeout and
// does not follow redirects, so that tests see the redirect answers
// themselves. The idle connections of tr are closed when t ends.
func Client(t testing.TB, tr *http.Transport, timeout time.Duration) *http.Client {
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{
		Transport:     tr,
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
