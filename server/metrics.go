package server

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/openkes/openkes/internal/keycache"
	"github.com/openkes/openkes/keystore"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// metrics is the private Prometheus registry of a Server: exactly the
// families of docs/monitoring.md#upstream-kes-metrics, plus the OpenKES families of extMetrics.
type metrics struct {
	reg *prometheus.Registry

	active   prometheus.Gauge
	success  *prometheus.CounterVec
	errors   *prometheus.CounterVec
	failures *prometheus.CounterVec
	latency  prometheus.Histogram

	auditEvents prometheus.Counter
	errorEvents prometheus.Counter

	x *extMetrics

	// codes caches the counter bound to each status code. Counters are
	// bound on first use so that, as upstream, a family only appears after
	// its first sample.
	codes [600]atomic.Pointer[boundCounter]
}

type boundCounter struct{ prometheus.Counter }

// upstreamOpts are the options of the upstream family
// kes_<subsystem>_<name>.
func upstreamOpts(subsystem, name, help string) prometheus.Opts {
	return prometheus.Opts{Namespace: "kes", Subsystem: subsystem, Name: name, Help: help}
}

func newMetrics(started time.Time, auditHub, errorHub *hub) *metrics {
	byCode := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts(upstreamOpts("http", name, help)), []string{"code"})
	}
	logEvents := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts(upstreamOpts("log", name, help)))
	}
	m := &metrics{
		reg: prometheus.NewRegistry(),
		active: prometheus.NewGauge(prometheus.GaugeOpts(upstreamOpts("http", "request_active",
			"Number of active requests that are not finished, yet."))),
		success: byCode("request_success", "Number of requests that have been served successfully."),
		errors:  byCode("request_error", "Number of request that failed due to some error. (HTTP 4xx status code)"),
		failures: byCode("request_failure",
			"Number of request that failed due to some internal failure. (HTTP 5xx status code)"),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "kes", Subsystem: "http", Name: "response_time",
			Help:    "Histogram of request response times spawning from 10ms to 10s.",
			Buckets: []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 1.5, 3, 5, 10},
		}),
		auditEvents: logEvents("audit_events", "Number of audit log events written to the audit log targets."),
		errorEvents: logEvents("error_events", "Number of error log events written to the error log targets."),
	}
	m.reg.MustRegister(m.active, m.success, m.errors, m.failures, m.latency,
		m.auditEvents, m.errorEvents, newSystemCollector(started))
	m.x = newExtMetrics(m.reg)
	auditHub.delivered = m.auditEvents
	errorHub.delivered = m.errorEvents
	auditHub.dropped = m.x.auditDropped
	errorHub.dropped = m.x.errorDropped
	return m
}

// count counts a response of an instrumented route by its status class;
// other statuses (1xx, 3xx, none) are not counted.
func (m *metrics) count(status int) {
	if status < 200 || status >= len(m.codes) || status/100 == 3 {
		return
	}
	b := m.codes[status].Load()
	if b == nil {
		vec := m.success
		switch status / 100 {
		case 4:
			vec = m.errors
		case 5:
			vec = m.failures
		}
		b = &boundCounter{vec.WithLabelValues(strconv.Itoa(status))}
		m.codes[status].Store(b)
	}
	b.Inc()
}

// acceptedFormats are the exposition formats /v1/metrics offers, in
// order of preference (no OpenMetrics, see docs/api.md#metrics).
var acceptedFormats = expfmt.DefaultAcceptedFormats()

// write gathers the registry and writes it in the format negotiated from
// the Accept header (text format 0.0.4 by default), as upstream. The error
// is that of gathering or writing.
func (m *metrics) write(w http.ResponseWriter, r *http.Request) error {
	mfs, err := m.reg.Gather()
	if err != nil && len(mfs) == 0 {
		return err
	}
	format := expfmt.NegotiateAccept(r.Header, acceptedFormats...)
	w.Header().Set("Content-Type", string(format))
	w.WriteHeader(http.StatusOK)
	enc := expfmt.NewEncoder(w, format)
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return err
		}
	}
	if c, ok := enc.(expfmt.Closer); ok {
		return c.Close()
	}
	return err
}

// systemCollector computes the kes_system_* gauges at scrape time, reading
// the memory statistics once per scrape.
type systemCollector struct {
	started time.Time

	upTime, numCPU, numCPUUsed, numThreads *prometheus.Desc
	heapUsed, heapObjects, stackUsed       *prometheus.Desc
}

func newSystemCollector(started time.Time) *systemCollector {
	desc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("kes_system_"+name, help, nil, nil)
	}
	return &systemCollector{
		started:     started,
		upTime:      desc("up_time", "The time the server has been up and running in seconds."),
		numCPU:      desc("num_cpu", "The number of logical CPUs available on the system. It may be larger than the number of usable CPUs."),
		numCPUUsed:  desc("num_cpu_used", "The number of logical CPUs usable by the server. It may be smaller than the number of available CPUs."),
		numThreads:  desc("num_threads", "The number of concurrent co-routines/threads that currently exists."),
		heapUsed:    desc("mem_heap_used", "The number of bytes that are currently allocated on the heap memory."),
		heapObjects: desc("mem_heap_objects", "The number of objects that are currently allocated on the heap memory."),
		stackUsed:   desc("mem_stack_used", "The bytes of stack memory obtained from the OS."),
	}
}

func (c *systemCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.upTime, c.numCPU, c.numCPUUsed, c.numThreads, c.heapUsed, c.heapObjects, c.stackUsed} {
		ch <- d
	}
}

func (c *systemCollector) Collect(ch chan<- prometheus.Metric) {
	var mem runtime.MemStats
	runtime.ReadMemStats(&mem)
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	gauge(c.upTime, time.Since(c.started).Truncate(10*time.Millisecond).Seconds())
	gauge(c.numCPU, float64(runtime.NumCPU()))
	gauge(c.numCPUUsed, float64(runtime.GOMAXPROCS(0)))
	gauge(c.numThreads, float64(runtime.NumGoroutine()))
	gauge(c.heapUsed, float64(mem.HeapAlloc))
	gauge(c.heapObjects, float64(mem.HeapObjects))
	gauge(c.stackUsed, float64(mem.StackSys))
}

// OpenKES families beyond the upstream ones (docs/monitoring.md#openkes-metrics). kms-go's Client.Metrics rejects any
// family other than the three kes_http_request_* counters that does not
// hold exactly one sample, so none of them has labels: a dimension such
// as the key-store operation or the failure reason is part of the family
// name, and every family exists (at zero) from the start.

// storeOps are the key-store operations that are timed, in the order of
// the storeMetrics arrays.
var storeOps = [...]string{"get", "create", "delete", "list", "status"}

const (
	opGet = iota
	opCreate
	opDelete
	opList
	opStatus
)

// tlsReasons are the classes of TLS handshake failures, each with a
// counter kes_tls_handshake_failures_<reason>_total.
var tlsReasons = [...]string{"no_certificate", "bad_certificate", "timeout", "plain_http", "other"}

// tlsHelp are the HELP texts of the TLS failure counters.
var tlsHelp = [len(tlsReasons)]string{
	"Number of TLS handshakes that failed because the client sent no certificate although one is required.",
	"Number of TLS handshakes that failed because a certificate was rejected (by the server or by the client).",
	"Number of TLS handshakes that did not complete within the handshake timeout.",
	"Number of connections that sent plain HTTP to the TLS port.",
	"Number of TLS handshakes that failed for another reason (protocol errors, closed connections).",
}

const (
	tlsNoCertificate = iota
	tlsBadCertificate
	tlsTimeout
	tlsPlainHTTP
	tlsOther
)

// storeBuckets are the buckets of the key-store latency histograms, in
// seconds: a local store answers in microseconds, a remote KMS in
// milliseconds to seconds.
var storeBuckets = []float64{0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// requestBuckets are the buckets of kes_http_request_duration_seconds:
// a request served from the key cache takes tens of microseconds, one
// that reaches a remote key store milliseconds to seconds. (The upstream
// kes_http_response_time starts at 10 ms, so it puts nearly every request
// into its first bucket.)
var requestBuckets = []float64{
	0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
	0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
}

// observeLatency records the response time of an instrumented request in
// the upstream histogram and in the finer one.
func (m *metrics) observeLatency(d time.Duration) {
	sec := d.Seconds()
	m.latency.Observe(sec)
	m.x.requestDuration.Observe(sec)
}

// extMetrics are the OpenKES families.
type extMetrics struct {
	storeLatency [len(storeOps)]prometheus.Histogram
	storeErrors  [len(storeOps)]prometheus.Counter

	cacheHits, cacheMisses, cacheEvictions, cacheOfflineHits prometheus.Counter

	tlsFailures [len(tlsReasons)]prometheus.Counter

	policyDenials prometheus.Counter

	auditDropped, errorDropped prometheus.Counter

	// requestDuration is kes_http_response_time with buckets fine enough
	// for requests served from the cache in well under a millisecond.
	requestDuration prometheus.Histogram
}

func newExtMetrics(reg *prometheus.Registry) *extMetrics {
	counter := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
		reg.MustRegister(c)
		return c
	}
	x := &extMetrics{}
	for i, op := range storeOps {
		x.storeLatency[i] = prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kes_keystore_" + op + "_seconds",
			Help:    "Latency of key store " + op + " operations in seconds.",
			Buckets: storeBuckets,
		})
		reg.MustRegister(x.storeLatency[i])
		x.storeErrors[i] = counter("kes_keystore_"+op+"_errors_total",
			"Number of key store "+op+" operations that failed (not found and already exists are no failures).")
	}
	x.cacheHits = counter("kes_cache_hits_total", "Number of key reads served from the key cache.")
	x.cacheMisses = counter("kes_cache_misses_total", "Number of key reads that had to ask the key store.")
	x.cacheEvictions = counter("kes_cache_evictions_total", "Number of keys dropped from the key cache by expiry.")
	x.cacheOfflineHits = counter("kes_cache_offline_hits_total",
		"Number of key reads served from the key cache while the key store was offline.")
	for i, reason := range tlsReasons {
		x.tlsFailures[i] = counter("kes_tls_handshake_failures_"+reason+"_total", tlsHelp[i])
	}
	x.policyDenials = counter("kes_policy_denials_total",
		"Number of requests denied because the identity is unknown or its policy does not allow the path.")
	x.auditDropped = counter("kes_log_audit_dropped_events_total",
		"Number of audit events lost by /v1/log/audit subscribers that did not keep up.")
	x.errorDropped = counter("kes_log_error_dropped_events_total",
		"Number of error events lost by /v1/log/error subscribers that did not keep up.")
	x.requestDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "kes_http_request_duration_seconds",
		Help:    "Response times of the requests counted by kes_http_response_time, in seconds, from 50µs to 10s.",
		Buckets: requestBuckets,
	})
	reg.MustRegister(x.requestDuration)
	return x
}

// CacheHit, CacheMiss and CacheEvicted implement keycache.Observer.
func (x *extMetrics) CacheHit(offline bool) {
	x.cacheHits.Inc()
	if offline {
		x.cacheOfflineHits.Inc()
	}
}

func (x *extMetrics) CacheMiss() { x.cacheMisses.Inc() }

func (x *extMetrics) CacheEvicted(n int) { x.cacheEvictions.Add(float64(n)) }

var _ keycache.Observer = (*extMetrics)(nil)

// tlsFailure counts a failed TLS handshake by the class of err.
func (x *extMetrics) tlsFailure(err error, plainHTTP bool) {
	x.tlsFailures[tlsReason(err, plainHTTP)].Inc()
}

func tlsReason(err error, plainHTTP bool) int {
	var ne net.Error
	var ce *tls.CertificateVerificationError
	var ae tls.AlertError
	switch {
	case plainHTTP:
		return tlsPlainHTTP
	case errors.As(err, &ne) && ne.Timeout():
		return tlsTimeout
	case strings.Contains(err.Error(), "client didn't provide a certificate"):
		return tlsNoCertificate
	case errors.As(err, &ce), strings.Contains(err.Error(), "certificate"):
		return tlsBadCertificate
	case errors.As(err, &ae) && (ae == 42 || ae == 43 || ae == 44 || ae == 45 || ae == 46 || ae == 48):
		return tlsBadCertificate // alerts bad_certificate ... unknown_ca
	}
	return tlsOther
}

// meteredStore times the operations of a key store and counts their
// failures. It sits between the key cache and the configured store.
type meteredStore struct {
	keystore.Store
	x *extMetrics
}

func (m meteredStore) done(op int, start time.Time, err error) {
	m.x.storeLatency[op].Observe(time.Since(start).Seconds())
	if err != nil && !errors.Is(err, keystore.ErrNotFound) && !errors.Is(err, keystore.ErrExists) {
		m.x.storeErrors[op].Inc()
	}
}

func (m meteredStore) Get(ctx context.Context, name string) ([]byte, error) {
	start := time.Now()
	b, err := m.Store.Get(ctx, name)
	m.done(opGet, start, err)
	return b, err
}

func (m meteredStore) Create(ctx context.Context, name string, value []byte) error {
	start := time.Now()
	err := m.Store.Create(ctx, name, value)
	m.done(opCreate, start, err)
	return err
}

func (m meteredStore) Delete(ctx context.Context, name string) error {
	start := time.Now()
	err := m.Store.Delete(ctx, name)
	m.done(opDelete, start, err)
	return err
}

func (m meteredStore) List(ctx context.Context, prefix string, n int) ([]string, string, error) {
	start := time.Now()
	names, next, err := m.Store.List(ctx, prefix, n)
	m.done(opList, start, err)
	return names, next, err
}

func (m meteredStore) Status(ctx context.Context) (keystore.State, error) {
	start := time.Now()
	st, err := m.Store.Status(ctx)
	m.done(opStatus, start, err)
	return st, err
}
