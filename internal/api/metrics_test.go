package api_test

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/openkes/openkes/keystore/mem"
	"github.com/openkes/openkes/server"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// upstreamFamilies are the families of docs/monitoring.md#upstream-kes-metrics. The golden file pins
// their type, label names, buckets and HELP texts; every other family is
// an OpenKES extension and is listed in the golden file's second part.
var upstreamFamilies = map[string]bool{
	"kes_http_request_active": true, "kes_http_request_error": true, "kes_http_request_failure": true,
	"kes_http_request_success": true, "kes_http_response_time": true, "kes_log_audit_events": true,
	"kes_log_error_events": true, "kes_system_mem_heap_objects": true, "kes_system_mem_heap_used": true,
	"kes_system_mem_stack_used": true, "kes_system_num_cpu": true, "kes_system_num_cpu_used": true,
	"kes_system_num_threads": true, "kes_system_up_time": true,
}

// TestMetricsGolden scrapes /v1/metrics after a 200, a 404 and a 502 of
// an instrumented route (so that the three counter families exist),
// parses it with the Prometheus text parser and compares the shape of
// every family, not its values, with testdata/metrics.golden. Run with
// OPENKES_UPDATE_GOLDEN=1 to rewrite the file.
func TestMetricsGolden(t *testing.T) {
	t.Parallel()
	store := newSwitchStore(mem.New())
	ts := startServer(t, &server.Config{Admin: identityOf("admin"), Store: store})
	c := ts.client(t, &apiKeyCert(t, callers[0].apiKey).TLS)

	do := func(method, path string, want int) {
		t.Helper()
		r, err := http.NewRequestWithContext(t.Context(), method, "https://"+ts.addr+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("%s %s = %d, want %d", method, path, resp.StatusCode, want)
		}
	}
	do("POST", "/v1/key/create/k", 200)
	do("GET", "/v1/key/describe/missing", 404)
	store.set(errors.New("golden: store down"), nil)
	do("POST", "/v1/key/create/k2", 502)
	store.set(nil, nil)

	status, body, err := get(t, c, ts.addr, "/v1/metrics")
	if err != nil || status != 200 {
		t.Fatalf("GET /v1/metrics = %d, %v", status, err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("/v1/metrics does not parse: %v\n%s", err, body)
	}

	var upstream, ext []string
	for name, mf := range mfs {
		line := describeFamily(mf)
		if upstreamFamilies[name] {
			upstream = append(upstream, line)
		} else {
			ext = append(ext, line)
			// kms-go's Client.Metrics needs exactly one sample.
			if n := len(mf.GetMetric()); n != 1 {
				t.Errorf("family %s has %d samples, want 1 (kms-go)", name, n)
			}
			if !strings.HasPrefix(name, "kes_") {
				t.Errorf("family %s lacks the kes_ prefix", name)
			}
		}
	}
	for name := range upstreamFamilies {
		if mfs[name] == nil {
			t.Errorf("upstream family %s missing", name)
		}
	}
	sort.Strings(upstream)
	sort.Strings(ext)
	var out bytes.Buffer
	out.WriteString("# Upstream families (docs/monitoring.md#upstream-kes-metrics): name, type, labels, buckets, help.\n")
	for _, l := range upstream {
		out.WriteString(l)
	}
	out.WriteString("\n# OpenKES families: one sample each, so that kms-go's Client.Metrics accepts them.\n")
	for _, l := range ext {
		out.WriteString(l)
	}

	file := filepath.Join("testdata", "metrics.golden")
	if updateGolden {
		if err := os.WriteFile(file, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run with OPENKES_UPDATE_GOLDEN=1)", err)
	}
	if diff := cmp.Diff(string(want), out.String()); diff != "" {
		t.Errorf("metrics shape differs from %s (-want +got):\n%s", file, diff)
	}
}

// describeFamily prints the shape of mf: its name and type, the label
// sets of its samples, the bucket bounds of histograms and the HELP text.
func describeFamily(mf *dto.MetricFamily) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s\n", mf.GetName(), strings.ToLower(mf.GetType().String()))
	var labels []string
	for _, m := range mf.GetMetric() {
		var ls []string
		for _, lp := range m.GetLabel() {
			ls = append(ls, fmt.Sprintf("%s=%q", lp.GetName(), lp.GetValue()))
		}
		if len(ls) > 0 {
			labels = append(labels, "{"+strings.Join(ls, ",")+"}")
		}
		if h := m.GetHistogram(); h != nil && len(labels) == 0 {
			var bs []string
			for _, bk := range h.GetBucket() {
				bs = append(bs, fmt.Sprint(bk.GetUpperBound()))
			}
			fmt.Fprintf(&b, "  buckets %s\n", strings.Join(bs, " "))
		}
	}
	sort.Strings(labels)
	for _, l := range labels {
		fmt.Fprintf(&b, "  sample %s\n", l)
	}
	fmt.Fprintf(&b, "  help %q\n", mf.GetHelp())
	return b.String()
}
