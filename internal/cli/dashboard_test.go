package cli

import (
	"encoding/json"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// dashboardFile is the Grafana dashboard shipped in the repository; see
// docs/monitoring.md.
const dashboardFile = "../../examples/grafana/dashboard.json"

// upstreamMetrics are the families of upstream KES (docs/monitoring.md#upstream-kes-metrics),
// with their type: a dashboard reads a histogram through its _bucket,
// _sum and _count series.
var upstreamMetrics = map[string]string{
	"kes_http_request_active":     "gauge",
	"kes_http_request_error":      "counter",
	"kes_http_request_failure":    "counter",
	"kes_http_request_success":    "counter",
	"kes_http_response_time":      "histogram",
	"kes_log_audit_events":        "counter",
	"kes_log_error_events":        "counter",
	"kes_system_mem_heap_objects": "gauge",
	"kes_system_mem_heap_used":    "gauge",
	"kes_system_mem_stack_used":   "gauge",
	"kes_system_num_cpu":          "gauge",
	"kes_system_num_cpu_used":     "gauge",
	"kes_system_num_threads":      "gauge",
	"kes_system_up_time":          "gauge",
}

// openKESMetrics are the families OpenKES adds (issue #4). Their names
// were not final when the dashboard was written: if one changes, change
// it here and in the dashboard.
var openKESMetrics = map[string]string{
	"kes_keystore_get_seconds":                         "histogram",
	"kes_keystore_create_seconds":                      "histogram",
	"kes_keystore_delete_seconds":                      "histogram",
	"kes_keystore_list_seconds":                        "histogram",
	"kes_keystore_status_seconds":                      "histogram",
	"kes_keystore_get_errors_total":                    "counter",
	"kes_keystore_create_errors_total":                 "counter",
	"kes_keystore_delete_errors_total":                 "counter",
	"kes_keystore_list_errors_total":                   "counter",
	"kes_keystore_status_errors_total":                 "counter",
	"kes_cache_hits_total":                             "counter",
	"kes_cache_misses_total":                           "counter",
	"kes_cache_evictions_total":                        "counter",
	"kes_cache_offline_hits_total":                     "counter",
	"kes_tls_handshake_failures_no_certificate_total":  "counter",
	"kes_tls_handshake_failures_bad_certificate_total": "counter",
	"kes_tls_handshake_failures_timeout_total":         "counter",
	"kes_tls_handshake_failures_plain_http_total":      "counter",
	"kes_tls_handshake_failures_other_total":           "counter",
	"kes_policy_denials_total":                         "counter",
	"kes_log_audit_dropped_events_total":               "counter",
	"kes_log_error_dropped_events_total":               "counter",
}

var metricName = regexp.MustCompile(`\bkes_[a-z0-9_]+`)

// TestDashboard checks that the Grafana dashboard is valid JSON, that
// every metric its queries name is one the server exports, and that it
// shows every upstream family.
func TestDashboard(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var dash map[string]any
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if dash["uid"] != "openkes" || dash["title"] == "" {
		t.Errorf("dashboard uid, title = %v, %v, want openkes and a title", dash["uid"], dash["title"])
	}

	// Every query string anywhere: panel targets and template variables.
	var queries []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, c := range v {
				if s, ok := c.(string); ok && (k == "expr" || k == "query" || k == "definition") {
					queries = append(queries, s)
				}
				walk(c)
			}
		case []any:
			for _, c := range v {
				walk(c)
			}
		}
	}
	walk(dash)
	if len(queries) == 0 {
		t.Fatal("no queries in the dashboard")
	}

	known := map[string]string{}
	maps.Copy(known, upstreamMetrics)
	maps.Copy(known, openKESMetrics)
	used := map[string]bool{}
	for _, q := range queries {
		if !balanced(q) {
			t.Errorf("query %q: unbalanced brackets", q)
		}
		for _, name := range metricName.FindAllString(q, -1) {
			family := name
			if _, ok := known[name]; !ok {
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					if base, ok := strings.CutSuffix(name, suffix); ok && known[base] == "histogram" {
						family = base
					}
				}
			}
			if _, ok := known[family]; !ok {
				t.Errorf("query %q: unknown metric %s", q, name)
				continue
			}
			used[family] = true
		}
	}
	for _, name := range slices.Sorted(maps.Keys(upstreamMetrics)) {
		if !used[name] {
			t.Errorf("the dashboard does not show upstream metric %s", name)
		}
	}

	// Panel ids must be unique, and every panel but a row must query.
	ids := map[float64]bool{}
	for _, p := range dash["panels"].([]any) {
		p := p.(map[string]any)
		id, _ := p["id"].(float64)
		if ids[id] {
			t.Errorf("panel %q: duplicate id %v", p["title"], id)
		}
		ids[id] = true
		if targets, _ := p["targets"].([]any); p["type"] != "row" && len(targets) == 0 {
			t.Errorf("panel %q has no queries", p["title"])
		}
	}
}

// balanced reports whether the brackets of a query match.
func balanced(q string) bool {
	var stack []rune
	inString := false
	for _, c := range q {
		switch {
		case c == '"':
			inString = !inString
		case inString:
		case c == '(' || c == '[' || c == '{':
			stack = append(stack, c)
		case c == ')' || c == ']' || c == '}':
			open := map[rune]rune{')': '(', ']': '[', '}': '{'}[c]
			if len(stack) == 0 || stack[len(stack)-1] != open {
				return false
			}
			stack = stack[:len(stack)-1]
		}
	}
	return len(stack) == 0 && !inString
}
