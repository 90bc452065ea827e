package loadgen

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	r := Result{latencies: []time.Duration{1 * ms, 2 * ms, 3 * ms, 4 * ms, 5 * ms, 6 * ms, 7 * ms, 8 * ms, 9 * ms, 10 * ms}}
	for _, tt := range []struct {
		q    float64
		want time.Duration
	}{{0, 1 * ms}, {0.5, 6 * ms}, {0.9, 10 * ms}, {0.99, 10 * ms}, {1, 10 * ms}} {
		if got := r.Percentile(tt.q); got != tt.want {
			t.Errorf("Percentile(%v) = %v, want %v", tt.q, got, tt.want)
		}
	}
	if got := (&Result{}).Percentile(0.5); got != 0 {
		t.Errorf("Percentile of no requests = %v, want 0", got)
	}
}

// TestRun checks the counts of a load against a server that fails every
// third request, for a fixed count and until cancelled, over HTTP/2 and
// HTTP/1.1.
func TestRun(t *testing.T) {
	t.Parallel()
	var n atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if string(body) != `{"context":"YWJj"}` || r.Method != "POST" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		if n.Add(1)%3 == 0 {
			w.WriteHeader(http.StatusConflict)
			io.WriteString(w, `{"message":"nope"}`)
			return
		}
		io.WriteString(w, `{"plaintext":"AA=="}`)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	conf := srv.Client().Transport.(*http.Transport).TLSClientConfig
	for _, h2 := range []bool{true, false} {
		clients := []*http.Client{{Transport: NewTransport(conf, h2)}, {Transport: NewTransport(conf, h2)}}
		o := Options{Clients: clients, Streams: 3, URL: srv.URL + "/v1/key/generate/k", Body: []byte(`{"context":"YWJj"}`), Requests: 300}
		n.Store(0)
		res := Run(context.Background(), o)
		if res.Requests != 300 || res.Errors != 100 || len(res.latencies) != 200 {
			t.Errorf("h2=%v: %d requests, %d errors, %d latencies; want 300, 100, 200", h2, res.Requests, res.Errors, len(res.latencies))
		}
		if res.FirstError == nil || res.FirstError.Error() != "409 Conflict: nope" {
			t.Errorf("h2=%v: first error %v, want 409 Conflict: nope", h2, res.FirstError)
		}
		if res.RPS() <= 0 || res.Percentile(0.99) <= 0 {
			t.Errorf("h2=%v: rps %v, p99 %v, want > 0", h2, res.RPS(), res.Percentile(0.99))
		}

		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		o.Requests = 0
		res = Run(ctx, o)
		cancel()
		if res.Requests == 0 || res.Requests-res.Errors != len(res.latencies) {
			t.Errorf("h2=%v until cancelled: %d requests, %d errors, %d latencies", h2, res.Requests, res.Errors, len(res.latencies))
		}
		if got := strings.Count(res.FirstError.Error(), "nope"); got != 1 {
			t.Errorf("h2=%v until cancelled: first error %v", h2, res.FirstError)
		}
		for _, c := range clients {
			c.Transport.(*http.Transport).CloseIdleConnections()
		}
	}
}
