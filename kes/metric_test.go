package kes

import (
	_ "embed"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// exposition is testdata/exposition.txt: a /v1/metrics answer as the
// KES metric set (docs/monitoring.md#upstream-kes-metrics) looks in the
// Prometheus text format 0.0.4, families sorted by name.
//
//go:embed testdata/exposition.txt
var exposition string

var expositionMetric = Metric{
	RequestOK:     42,
	RequestErr:    7,
	RequestFail:   1,
	RequestActive: 1,
	AuditEvents:   3,
	ErrorEvents:   0,
	LatencyHistogram: map[time.Duration]uint64{
		10 * time.Millisecond:   40,
		50 * time.Millisecond:   45,
		100 * time.Millisecond:  46,
		250 * time.Millisecond:  47,
		500 * time.Millisecond:  48,
		1 * time.Second:         49,
		1500 * time.Millisecond: 49,
		3 * time.Second:         50,
		5 * time.Second:         50,
		10 * time.Second:        50,
	},
	RequestDuration: map[time.Duration]uint64{
		50 * time.Microsecond:  10,
		250 * time.Microsecond: 30,
		10 * time.Millisecond:  40,
		10 * time.Second:       50,
	},
	UpTime:      3725*time.Second + 430*time.Millisecond,
	CPUs:        8,
	UsableCPUs:  4,
	Threads:     17,
	HeapAlloc:   3854080,
	HeapObjects: 21570,
	StackAlloc:  589824,
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.RequestURI != "/v1/metrics" {
			t.Errorf("request = %s %s, want GET /v1/metrics", r.Method, r.RequestURI)
		}
		if got := r.Header.Get("Accept"); got != "text/plain" {
			t.Errorf("Accept = %q, want text/plain", got)
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8; escaping=underscores")
		io.WriteString(w, exposition)
	}))
	c := newTestClient(t, srv)
	got, err := c.Metrics(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(expositionMetric, got); diff != "" {
		t.Errorf("Metrics mismatch (-want +got):\n%s", diff)
	}
	if n := got.RequestN(); n != 50 {
		t.Errorf("RequestN() = %d, want 50", n)
	}
}

func TestMetricsProtobuf(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited")
		w.Write([]byte{0x0a, 0x01})
	}))
	c := newTestClient(t, srv)
	if _, err := c.Metrics(t.Context()); err == nil || !strings.Contains(err.Error(), "content type") {
		t.Errorf("Metrics = %v, want a content type error", err)
	}
}

func TestParseMetrics(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		text    string
		want    Metric
		wantErr bool
	}{
		{name: "empty", text: "", want: Metric{}},
		{name: "fresh server without request counters", text: "kes_http_request_active 0\nkes_system_num_cpu 2\n", want: Metric{CPUs: 2}},
		{
			name: "unknown families and comments are ignored",
			text: "# a comment\ngo_goroutines 7\nsomething{weird 1 2 3\nkes_http_request_successes 4\nkes_system_num_threads 3\n",
			want: Metric{Threads: 3},
		},
		{
			name: "timestamps, spaces and CRLF",
			text: "kes_system_num_cpu 4 1700000000000\r\nkes_http_request_success{code=\"200\" , method=\"GET\"} 2\r\n  kes_log_error_events\t5\r\n",
			want: Metric{CPUs: 4, RequestOK: 2, ErrorEvents: 5},
		},
		{
			name: "escaped label values",
			text: `kes_http_request_error{code="4\"0\\0\n",x="}"} 3` + "\n",
			want: Metric{RequestErr: 3},
		},
		{name: "up time truncation to ms", text: "kes_system_up_time 0.01\n", want: Metric{UpTime: 10 * time.Millisecond}},
		{name: "scientific notation", text: "kes_system_mem_stack_used 1e+06\n", want: Metric{StackAlloc: 1000000}},
		{name: "duplicate gauge", text: "kes_system_num_cpu 1\nkes_system_num_cpu 2\n", wantErr: true},
		{name: "duplicate bucket", text: "kes_http_response_time_bucket{le=\"1\"} 1\nkes_http_response_time_bucket{le=\"1.0\"} 1\n", wantErr: true},
		{name: "bucket without le", text: "kes_http_response_time_bucket 1\n", wantErr: true},
		{name: "bucket with bad le", text: "kes_http_response_time_bucket{le=\"soon\"} 1\n", wantErr: true},
		{name: "negative bucket", text: "kes_http_response_time_bucket{le=\"-1\"} 1\n", wantErr: true},
		{name: "negative counter", text: "kes_http_request_success{code=\"200\"} -1\n", wantErr: true},
		{name: "NaN", text: "kes_system_num_threads NaN\n", wantErr: true},
		{name: "infinite", text: "kes_system_mem_heap_used +Inf\n", wantErr: true},
		{name: "huge int", text: "kes_system_num_cpu 1e12\n", wantErr: true},
		{name: "huge up time", text: "kes_system_up_time 1e300\n", wantErr: true},
		{name: "missing value", text: "kes_system_num_cpu\n", wantErr: true},
		{name: "bad value", text: "kes_system_num_cpu two\n", wantErr: true},
		{name: "extra fields", text: "kes_system_num_cpu 1 2 3\n", wantErr: true},
		{name: "unterminated labels", text: "kes_http_request_success{code=\"200\" 1\n", wantErr: true},
		{name: "unquoted label", text: "kes_http_request_success{code=200} 1\n", wantErr: true},
		{name: "label without value", text: "kes_http_request_success{code} 1\n", wantErr: true},
		{name: "empty label name", text: "kes_http_request_success{=\"x\"} 1\n", wantErr: true},
		{name: "garbage after label", text: "kes_http_request_success{code=\"200\"x} 1\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseMetrics([]byte(tt.text))
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseMetrics(%q) error = %v, want error %v", tt.text, err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("parseMetrics(%q) mismatch (-want +got):\n%s", tt.text, diff)
			}
		})
	}
}
