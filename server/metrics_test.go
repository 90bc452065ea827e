package server

import (
	"crypto/tls"
	"errors"
	"net"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func histogramCount(t *testing.T, h prometheus.Histogram) uint64 {
	t.Helper()
	var m dto.Metric
	if err := h.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}

func TestMeteredStore(t *testing.T) {
	t.Parallel()
	x := newExtMetrics(prometheus.NewRegistry())
	fs := newFlakyStore(newMemStore())
	s := meteredStore{fs, x}
	ctx := t.Context()
	if err := s.Create(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	s.Create(ctx, "k", []byte("v")) // exists: no failure
	s.Get(ctx, "nope")              // not found: no failure
	fs.down.Store(true)
	s.Get(ctx, "k")
	s.Status(ctx)
	fs.down.Store(false)
	fs.broken.Store(true)
	s.List(ctx, "", 0)
	s.Delete(ctx, "k")

	histCount := func(h prometheus.Histogram) uint64 {
		t.Helper()
		return histogramCount(t, h)
	}
	for op, want := range map[int]struct {
		n    uint64
		errs float64
	}{opCreate: {2, 0}, opGet: {2, 1}, opStatus: {1, 1}, opList: {1, 1}, opDelete: {1, 1}} {
		if n := histCount(x.storeLatency[op]); n != want.n {
			t.Errorf("kes_keystore_%s_seconds count = %d, want %d", storeOps[op], n, want.n)
		}
		if v := counterValue(t, x.storeErrors[op]); v != want.errs {
			t.Errorf("kes_keystore_%s_errors_total = %v, want %v", storeOps[op], v, want.errs)
		}
	}
}

func TestTLSReason(t *testing.T) {
	t.Parallel()
	timeout := &net.OpError{Op: "read", Err: timeoutErr{}}
	for _, tt := range []struct {
		name  string
		err   error
		plain bool
		want  int
	}{
		{"plain", errors.New("tls: first record does not look like a TLS handshake"), true, tlsPlainHTTP},
		{"timeout", timeout, false, tlsTimeout},
		{"no cert", errors.New("tls: client didn't provide a certificate"), false, tlsNoCertificate},
		{"bad cert", &tls.CertificateVerificationError{Err: errors.New("x509: unknown authority")}, false, tlsBadCertificate},
		{"alert", tls.AlertError(42), false, tlsBadCertificate},
		{"eof", errors.New("EOF"), false, tlsOther},
	} {
		if got := tlsReason(tt.err, tt.plain); got != tt.want {
			t.Errorf("%s: tlsReason(%v) = %s, want %s", tt.name, tt.err, tlsReasons[got], tlsReasons[tt.want])
		}
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestHubDropped(t *testing.T) {
	t.Parallel()
	h := newHub()
	h.dropped = prometheus.NewCounter(prometheus.CounterOpts{Name: "d"})
	sub := h.subscribe()
	defer h.unsubscribe(sub)
	for range subscriberBuffer + 3 {
		h.publish([]byte("x\n"))
	}
	if v := counterValue(t, h.dropped); v != 3 {
		t.Errorf("dropped = %v, want 3", v)
	}
}

// TestOfflineHitsMetric checks kes_cache_offline_hits_total end to end: a
// cached key keeps working while the store is down, and each such request
// is counted.
func TestOfflineHitsMetric(t *testing.T) {
	t.Parallel()
	fs := newFlakyStore(newMemStore())
	e := newEnv(t, func(c *Config) { c.Store = fs })
	admin := e.client(t, e.admin)
	x := e.srv.metrics.x
	do(t, admin, "POST", e.url("/v1/key/create/k"), "").want(t, 200)
	const body = `{"plaintext":"aGVsbG8="}`
	do(t, admin, "POST", e.url("/v1/key/encrypt/k"), body).want(t, 200) // miss
	do(t, admin, "POST", e.url("/v1/key/encrypt/k"), body).want(t, 200) // hit
	fs.down.Store(true)
	// A read of an uncached key finds the store unreachable and marks it
	// offline.
	if r := do(t, admin, "POST", e.url("/v1/key/encrypt/other"), body); r.status < 500 {
		t.Fatalf("encrypt with the store down: %d, want 5xx", r.status)
	}
	do(t, admin, "POST", e.url("/v1/key/encrypt/k"), body).want(t, 200) // offline hit
	for _, tt := range []struct {
		name string
		c    prometheus.Counter
		want float64
	}{
		{"kes_cache_hits_total", x.cacheHits, 2},
		{"kes_cache_misses_total", x.cacheMisses, 2},
		{"kes_cache_offline_hits_total", x.cacheOfflineHits, 1},
		{"kes_keystore_get_errors_total", x.storeErrors[opGet], 1},
	} {
		if got := counterValue(t, tt.c); got != tt.want {
			t.Errorf("%s = %v, want %v", tt.name, got, tt.want)
		}
	}
}
