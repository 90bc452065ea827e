package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/openkes/openkes/kes"
	"github.com/openkes/openkes/keystore/mem"
)

func TestParseFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		args      []string
		wantArgs  []string
		wantJSON  bool
		wantSrv   string
		wantError bool
	}{
		{name: "empty"},
		{name: "flags first", args: []string{"--json", "-s", "h:1", "a"}, wantArgs: []string{"a"}, wantJSON: true, wantSrv: "h:1"},
		{name: "flags last", args: []string{"a", "b", "--json", "--server=h:2"}, wantArgs: []string{"a", "b"}, wantJSON: true, wantSrv: "h:2"},
		{name: "interspersed", args: []string{"a", "--json", "b", "-s", "h:3", "c"}, wantArgs: []string{"a", "b", "c"}, wantJSON: true, wantSrv: "h:3"},
		{name: "terminator", args: []string{"a", "--", "--json", "-s"}, wantArgs: []string{"a", "--json", "-s"}},
		{name: "terminator first", args: []string{"--", "-x"}, wantArgs: []string{"-x"}},
		{name: "dash dash as value", args: []string{"-s", "--", "a", "--json"}, wantArgs: []string{"a"}, wantJSON: true, wantSrv: "--"},
		{name: "single dash is an argument", args: []string{"-", "--json"}, wantArgs: []string{"-"}, wantJSON: true},
		{name: "unknown flag", args: []string{"a", "--nope"}, wantError: true},
		{name: "missing value", args: []string{"a", "-s"}, wantError: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fs := newFlagSet("test")
			var jsonOut bool
			var srv string
			boolFlag(fs, &jsonOut, "json")
			stringFlag(fs, &srv, "s", "server")
			got, err := parseFlags(fs, tt.args)
			if (err != nil) != tt.wantError {
				t.Fatalf("parseFlags(%q) error = %v, want error %v", tt.args, err, tt.wantError)
			}
			if err != nil {
				return
			}
			if diff := cmp.Diff(tt.wantArgs, got); diff != "" {
				t.Errorf("parseFlags(%q) arguments (-want +got):\n%s", tt.args, diff)
			}
			if jsonOut != tt.wantJSON || srv != tt.wantSrv {
				t.Errorf("parseFlags(%q): json = %v, server = %q; want %v, %q", tt.args, jsonOut, srv, tt.wantJSON, tt.wantSrv)
			}
		})
	}
}

func TestHelpFlag(t *testing.T) {
	t.Parallel()
	fs := newFlagSet("test")
	for _, args := range [][]string{{"-h"}, {"a", "--help"}} {
		if _, err := parseFlags(fs, args); !errors.Is(err, flag.ErrHelp) {
			t.Errorf("parseFlags(%q) = %v, want flag.ErrHelp", args, err)
		}
	}
}

func TestEndpoints(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		flag  string
		env   map[string]string
		want  []string
		which string
	}{
		{name: "default", want: []string{"https://127.0.0.1:7373"}},
		{name: "host:port", env: map[string]string{"KES_SERVER": "kes:7373"}, want: []string{"https://kes:7373"}},
		{name: "list", env: map[string]string{"KES_SERVER": " a:1 ,https://b:2,, http://c:3 "}, want: []string{"https://a:1", "https://b:2", "https://c:3"}},
		{name: "order of variables", env: map[string]string{"MINIO_KMS_KES_ENDPOINT": "c:3", "KES_SERVER": "b:2", "MINIO_KES_SERVER": "a:1"}, want: []string{"https://a:1"}},
		{name: "minio endpoint", env: map[string]string{"MINIO_KMS_KES_ENDPOINT": "https://c:3,https://d:4"}, want: []string{"https://c:3", "https://d:4"}},
		{name: "flag wins", flag: "f:1", env: map[string]string{"MINIO_KES_SERVER": "a:1"}, want: []string{"https://f:1"}},
		{name: "empty variable is unset", env: map[string]string{"MINIO_KES_SERVER": "", "KES_SERVER": "b:2"}, want: []string{"https://b:2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := &env{getenv: func(k string) string { return tt.env[k] }}
			c := &connFlags{server: tt.flag}
			if diff := cmp.Diff(tt.want, c.endpoints(e)); diff != "" {
				t.Errorf("endpoints (-want +got):\n%s", diff)
			}
		})
	}
}

func TestForceTTYNeedsTestMode(t *testing.T) {
	t.Setenv("KES_FORCE_TTY", "1")
	if testMode {
		t.Fatal("testMode is set in the test process")
	}
	e := newEnv(strings.NewReader(""), new(bytes.Buffer), new(bytes.Buffer))
	if e.outTTY || e.errTTY || e.inTTY {
		t.Errorf("KES_FORCE_TTY=1 outside of test mode: outTTY=%v errTTY=%v inTTY=%v, want false", e.outTTY, e.errTTY, e.inTTY)
	}
}

func TestPercentile(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	hist := map[time.Duration]uint64{10 * ms: 50, 50 * ms: 90, 100 * ms: 100}
	tests := []struct {
		q     float64
		total uint64
		want  string
	}{
		{0.5, 100, "10ms"},
		{0.25, 100, "5ms"},
		{0.9, 100, "50ms"},
		{0.7, 100, "30ms"},
		{0.99, 100, "95ms"},
		{0.99, 200, "> 100ms"}, // half of the requests took longer than the largest bound
		{0.5, 0, "-"},
	}
	for _, tt := range tests {
		if got := percentile(hist, tt.total, tt.q); got != tt.want {
			t.Errorf("percentile(%v, total %d) = %q, want %q", tt.q, tt.total, got, tt.want)
		}
	}
	if got := percentile(nil, 10, 0.5); got != "-" {
		t.Errorf("percentile of an empty histogram = %q, want -", got)
	}
}

func TestComputeRates(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	prev := kes.Metric{RequestOK: 100, RequestErr: 10, RequestFail: 0,
		LatencyHistogram: map[time.Duration]uint64{10 * ms: 100, 100 * ms: 110}}
	cur := kes.Metric{RequestOK: 120, RequestErr: 15, RequestFail: 5,
		LatencyHistogram: map[time.Duration]uint64{10 * ms: 110, 100 * ms: 140}}
	r := computeRates(prev, cur, 2*time.Second)
	if r.ok != 10 || r.err != 2.5 || r.fail != 2.5 {
		t.Errorf("rates = %v/s ok, %v/s err, %v/s fail; want 10, 2.5, 2.5", r.ok, r.err, r.fail)
	}
	if r.total != 30 || r.errors != 10 {
		t.Errorf("total = %d, errors = %d; want 30, 10", r.total, r.errors)
	}
	// In the window: 10 requests ≤ 10ms, 20 more ≤ 100ms.
	if r.p50 != "32.5ms" || r.p90 != "86.5ms" {
		t.Errorf("p50 = %s, p90 = %s; want 32.5ms, 86.5ms", r.p50, r.p90)
	}

	// The first scrape: no rates, percentiles since the start.
	r = computeRates(kes.Metric{}, cur, 0)
	if r.ok != 0 || r.total != 140 || r.p50 != "6.4ms" {
		t.Errorf("first scrape: ok = %v, total = %d, p50 = %s; want 0, 140, 6.4ms", r.ok, r.total, r.p50)
	}

	// A restarted server: counters start again from zero.
	r = computeRates(cur, prev, time.Second)
	if r.ok != 100 || r.total != 110 {
		t.Errorf("after restart: ok = %v/s, total = %d; want 100, 110", r.ok, r.total)
	}
}

func TestFormat(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		0:                           "0s",
		42 * time.Second:            "42s",
		3*time.Minute + time.Second: "3m 1s",
		2*time.Hour + 5*time.Minute: "2h 5m",
		50*time.Hour + time.Minute:  "2d 2h",
	} {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%v) = %q, want %q", d, got, want)
		}
	}
	for d, want := range map[time.Duration]string{
		850 * time.Microsecond:   "850µs",
		12345 * time.Microsecond: "12.3ms",
		1234 * time.Millisecond:  "1.23s",
	} {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%v) = %q, want %q", d, got, want)
		}
	}
	for n, want := range map[uint64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 3 << 20: "3.0 MiB", 5 << 30: "5.0 GiB"} {
		if got := byteSize(n); got != want {
			t.Errorf("byteSize(%d) = %q, want %q", n, got, want)
		}
	}
	if got := truncate("abcdef", 4); got != "abc…" {
		t.Errorf("truncate = %q, want abc…", got)
	}
}

func TestExplain(t *testing.T) {
	t.Parallel()
	refused := &url.Error{Op: "Get", URL: "https://127.0.0.1:1/v1/status", Err: &net.OpError{
		Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED),
	}}
	hint, err := explain(refused)
	if got, want := err.Error(), "cannot connect to 127.0.0.1:1: connection refused"; got != want {
		t.Errorf("explain(refused) = %q, want %q", got, want)
	}
	if !strings.Contains(hint, "is the server running?") {
		t.Errorf("explain(refused) hint = %q", hint)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("the shortened error does not wrap the original")
	}

	plain := kes.ErrKeyNotFound
	if hint, err := explain(plain); hint != "" || err != plain {
		t.Errorf("explain(%v) = %q, %v; want no change", plain, hint, err)
	}
}

// TestInterrupt checks that kes log and kes metric, which run until
// interrupted, end with exit code 0 when their context ends (Ctrl-C).
func TestInterrupt(t *testing.T) {
	startAdminServer(t, mem.New())

	for _, args := range [][]string{{"log"}, {"log", "--error", "--json"}, {"metric", "--rate", "50ms"}} {
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		var stdout, stderr bytes.Buffer
		code := Run(ctx, args, strings.NewReader(""), &stdout, &stderr)
		cancel()
		if code != 0 || stderr.Len() > 0 {
			t.Errorf("kes %s interrupted: exit code %d, stderr %q; want 0 and nothing", strings.Join(args, " "), code, &stderr)
		}
	}
}
