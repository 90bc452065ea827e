package kes

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Metric is a snapshot of the metrics of a KES server.
//
// Request counters and the latency histogram cover the key, policy and
// identity APIs only, and only requests that passed authorisation.
type Metric struct {
	RequestOK     uint64 `json:"kes_http_request_success"` // requests answered with 2xx
	RequestErr    uint64 `json:"kes_http_request_error"`   // requests answered with 4xx
	RequestFail   uint64 `json:"kes_http_request_failure"` // requests answered with 5xx
	RequestActive uint64 `json:"kes_http_request_active"`  // requests being served

	AuditEvents uint64 `json:"kes_log_audit_events"` // events sent to audit log subscribers
	ErrorEvents uint64 `json:"kes_log_error_events"` // events sent to error log subscribers

	// LatencyHistogram maps the upper bound of each response-time bucket
	// to the number of requests that took at most that long (cumulative).
	// The +Inf bucket is left out: it counts every request, see RequestN.
	LatencyHistogram map[time.Duration]uint64 `json:"kes_http_response_time"`

	// RequestDuration is the same histogram with finer buckets, from
	// 50µs (kes_http_request_duration_seconds, an OpenKES family); nil if
	// the server does not report it. It is left out of the JSON form,
	// which keeps the upstream fields only.
	RequestDuration map[time.Duration]uint64 `json:"-"`

	UpTime      time.Duration `json:"kes_system_up_time"`          // time since the server started
	CPUs        int           `json:"kes_system_num_cpu"`          // logical CPUs of the host
	UsableCPUs  int           `json:"kes_system_num_cpu_used"`     // CPUs the server may use
	Threads     int           `json:"kes_system_num_threads"`      // goroutines of the server
	HeapAlloc   uint64        `json:"kes_system_mem_heap_used"`    // heap bytes in use
	HeapObjects uint64        `json:"kes_system_mem_heap_objects"` // heap objects
	StackAlloc  uint64        `json:"kes_system_mem_stack_used"`   // stack bytes obtained from the OS
}

// RequestN returns the number of requests counted: RequestOK + RequestErr
// + RequestFail.
func (m *Metric) RequestN() uint64 { return m.RequestOK + m.RequestErr + m.RequestFail }

// Metrics returns the server's metrics (GET /v1/metrics), requested in the
// Prometheus text format. Besides the errors described at [Client], it
// returns an error starting with "kes: " if the server answers in another
// format or the text is malformed: an invalid sample line, a counter that
// is negative or not a number, or a family other than the three request
// counters with more than one sample.
func (c *Client) Metrics(ctx context.Context) (Metric, error) {
	const path = "/v1/metrics"
	resp, err := c.do(ctx, request{method: http.MethodGet, path: path, accept: "text/plain"})
	if err != nil {
		return Metric{}, err
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(strings.ToLower(ct), "text/plain") {
		return Metric{}, invalidResponse(http.MethodGet, path, fmt.Errorf("unsupported content type %q", ct))
	}
	body, err := readBody(resp.Body, maxResponseBody)
	if err != nil {
		return Metric{}, invalidResponse(http.MethodGet, path, err)
	}
	m, err := parseMetrics(body)
	if err != nil {
		return Metric{}, invalidResponse(http.MethodGet, path, err)
	}
	return m, nil
}

// parseMetrics parses the KES families out of a Prometheus text
// exposition (format 0.0.4). Comments, HELP and TYPE lines and unknown
// families are skipped.
func parseMetrics(text []byte) (Metric, error) {
	var m Metric
	seen := make(map[string]bool)
	for n, line := range bytes.Split(text, []byte("\n")) {
		l := strings.TrimSpace(string(line))
		if l == "" || l[0] == '#' {
			continue
		}
		name := l
		if i := strings.IndexAny(l, "{ \t"); i >= 0 {
			name = l[:i]
		}
		if !knownMetric(name) {
			continue
		}
		labels, value, err := parseSample(l[len(name):])
		if err != nil {
			return Metric{}, fmt.Errorf("metrics line %d: %w", n+1, err)
		}
		if err := m.add(name, labels, value, seen); err != nil {
			return Metric{}, fmt.Errorf("metrics line %d: %s: %w", n+1, name, err)
		}
	}
	return m, nil
}

func knownMetric(name string) bool {
	switch name {
	case "kes_http_request_success", "kes_http_request_error", "kes_http_request_failure",
		"kes_http_request_active", "kes_http_response_time_bucket",
		"kes_http_request_duration_seconds_bucket",
		"kes_log_audit_events", "kes_log_error_events",
		"kes_system_up_time", "kes_system_num_cpu", "kes_system_num_cpu_used",
		"kes_system_num_threads", "kes_system_mem_heap_used",
		"kes_system_mem_heap_objects", "kes_system_mem_stack_used":
		return true
	}
	return false
}

// addBucket records the cumulative count of one histogram bucket in *h,
// keyed by its upper bound. The +Inf bucket is left out.
func addBucket(h *map[time.Duration]uint64, labels map[string]string, value float64) error {
	le, ok := labels["le"]
	if !ok {
		return errors.New("bucket without le label")
	}
	bound, err := strconv.ParseFloat(le, 64)
	if err != nil {
		return fmt.Errorf("invalid bucket bound %q", le)
	}
	if math.IsInf(bound, 1) {
		return nil
	}
	d, err := seconds(bound)
	if err != nil {
		return err
	}
	n, err := toUint(value)
	if err != nil {
		return err
	}
	if *h == nil {
		*h = make(map[time.Duration]uint64)
	}
	if _, dup := (*h)[d]; dup {
		return fmt.Errorf("duplicate bucket %q", le)
	}
	(*h)[d] = n
	return nil
}

// add records one sample of a known family.
func (m *Metric) add(name string, labels map[string]string, value float64, seen map[string]bool) error {
	switch name {
	case "kes_http_request_success", "kes_http_request_error", "kes_http_request_failure":
		// One sample per status code: the total is their sum.
		n, err := toUint(value)
		if err != nil {
			return err
		}
		switch name {
		case "kes_http_request_success":
			m.RequestOK += n
		case "kes_http_request_error":
			m.RequestErr += n
		default:
			m.RequestFail += n
		}
		return nil
	case "kes_http_response_time_bucket":
		return addBucket(&m.LatencyHistogram, labels, value)
	case "kes_http_request_duration_seconds_bucket":
		return addBucket(&m.RequestDuration, labels, value)
	}

	if seen[name] {
		return errors.New("more than one sample")
	}
	seen[name] = true
	if name == "kes_system_up_time" {
		d, err := seconds(value)
		if err != nil {
			return err
		}
		m.UpTime = d
		return nil
	}
	n, err := toUint(value)
	if err != nil {
		return err
	}
	if field, ok := uintFamilies[name]; ok {
		*field(m) = n
		return nil
	}
	if n > math.MaxInt32 {
		return fmt.Errorf("value %v out of range", value)
	}
	if field, ok := intFamilies[name]; ok {
		*field(m) = int(n)
	}
	return nil
}

// uintFamilies and intFamilies are the single-sample families add stores
// as they are, by the field of Metric that holds them.
var (
	uintFamilies = map[string]func(*Metric) *uint64{
		"kes_http_request_active":     func(m *Metric) *uint64 { return &m.RequestActive },
		"kes_log_audit_events":        func(m *Metric) *uint64 { return &m.AuditEvents },
		"kes_log_error_events":        func(m *Metric) *uint64 { return &m.ErrorEvents },
		"kes_system_mem_heap_used":    func(m *Metric) *uint64 { return &m.HeapAlloc },
		"kes_system_mem_heap_objects": func(m *Metric) *uint64 { return &m.HeapObjects },
		"kes_system_mem_stack_used":   func(m *Metric) *uint64 { return &m.StackAlloc },
	}
	intFamilies = map[string]func(*Metric) *int{
		"kes_system_num_cpu":      func(m *Metric) *int { return &m.CPUs },
		"kes_system_num_cpu_used": func(m *Metric) *int { return &m.UsableCPUs },
		"kes_system_num_threads":  func(m *Metric) *int { return &m.Threads },
	}
)

// parseSample parses the part of a sample line after the metric name:
// an optional {label="value",...} set, the value and an optional
// timestamp, which is ignored.
func parseSample(s string) (map[string]string, float64, error) {
	var labels map[string]string
	if strings.HasPrefix(s, "{") {
		var err error
		labels, s, err = parseLabels(s[1:])
		if err != nil {
			return nil, 0, err
		}
	}
	fields := strings.Fields(s)
	if len(fields) != 1 && len(fields) != 2 {
		return nil, 0, errors.New("malformed sample")
	}
	value, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return nil, 0, fmt.Errorf("invalid value %q", fields[0])
	}
	return labels, value, nil
}

// parseLabels parses `name="value",...}` and returns the labels and the
// rest of s after the closing brace.
func parseLabels(s string) (map[string]string, string, error) {
	labels := make(map[string]string)
	for {
		s = strings.TrimLeft(s, " \t")
		if strings.HasPrefix(s, "}") {
			return labels, s[1:], nil
		}
		eq := strings.IndexByte(s, '=')
		if eq < 0 {
			return nil, "", errors.New("malformed label")
		}
		name := strings.TrimSpace(s[:eq])
		if name == "" {
			return nil, "", errors.New("empty label name")
		}
		s = strings.TrimLeft(s[eq+1:], " \t")
		if !strings.HasPrefix(s, `"`) {
			return nil, "", errors.New("unquoted label value")
		}
		var value strings.Builder
		i, closed := 1, false
		for ; i < len(s); i++ {
			ch := s[i]
			if ch == '"' {
				closed = true
				break
			}
			if ch == '\\' && i+1 < len(s) {
				i++
				switch s[i] {
				case 'n':
					value.WriteByte('\n')
				default: // \\ and \"
					value.WriteByte(s[i])
				}
				continue
			}
			value.WriteByte(ch)
		}
		if !closed {
			return nil, "", errors.New("unterminated label value")
		}
		labels[name] = value.String()
		s = strings.TrimLeft(s[i+1:], " \t")
		switch {
		case strings.HasPrefix(s, ","):
			s = s[1:]
		case strings.HasPrefix(s, "}"):
		default:
			return nil, "", errors.New("malformed label set")
		}
	}
}

// toUint converts a sample value to a count.
func toUint(v float64) (uint64, error) {
	if math.IsNaN(v) || v < 0 || v >= 1<<64 {
		return 0, fmt.Errorf("value %v out of range", v)
	}
	return uint64(v), nil
}

// seconds converts a number of seconds to a duration.
func seconds(v float64) (time.Duration, error) {
	ns := math.Round(v * float64(time.Second))
	if math.IsNaN(ns) || ns < 0 || ns >= math.MaxInt64 {
		return 0, fmt.Errorf("duration %v out of range", v)
	}
	return time.Duration(ns), nil
}
