package server

import (
	"net/http"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// metrics is the private Prometheus registry of a Server with exactly the
// families of spec 9.3.
type metrics struct {
	reg *prometheus.Registry

	active   prometheus.Gauge
	success  *prometheus.CounterVec
	errors   *prometheus.CounterVec
	failures *prometheus.CounterVec
	latency  prometheus.Histogram

	auditEvents prometheus.Counter
	errorEvents prometheus.Counter

	// codes caches the counter bound to each status code. Counters are
	// bound on first use so that, as upstream, a family only appears after
	// its first sample.
	codes [600]atomic.Pointer[boundCounter]
}

type boundCounter struct{ prometheus.Counter }

func newMetrics(started time.Time, auditHub, errorHub *hub) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "kes", Subsystem: "http", Name: "request_active",
			Help: "Number of active requests that are not finished, yet.",
		}),
		success: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kes", Subsystem: "http", Name: "request_success",
			Help: "Number of requests that have been served successfully.",
		}, []string{"code"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kes", Subsystem: "http", Name: "request_error",
			Help: "Number of request that failed due to some error. (HTTP 4xx status code)",
		}, []string{"code"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kes", Subsystem: "http", Name: "request_failure",
			Help: "Number of request that failed due to some internal failure. (HTTP 5xx status code)",
		}, []string{"code"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "kes", Subsystem: "http", Name: "response_time",
			Help:    "Histogram of request response times spawning from 10ms to 10s.",
			Buckets: []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 1.5, 3, 5, 10},
		}),
		auditEvents: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "kes", Subsystem: "log", Name: "audit_events",
			Help: "Number of audit log events written to the audit log targets.",
		}),
		errorEvents: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "kes", Subsystem: "log", Name: "error_events",
			Help: "Number of error log events written to the error log targets.",
		}),
	}
	m.reg.MustRegister(m.active, m.success, m.errors, m.failures, m.latency,
		m.auditEvents, m.errorEvents, newSystemCollector(started))
	auditHub.delivered = m.auditEvents
	errorHub.delivered = m.errorEvents
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
// order of preference (spec 3.5: no OpenMetrics).
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
