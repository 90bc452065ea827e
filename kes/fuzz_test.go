package kes

import (
	"encoding/json"
	"testing"
)

func FuzzParseAPIKey(f *testing.F) {
	for _, v := range apiKeyVectors {
		f.Add(v.key)
	}
	f.Add("kes:v1:AQABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f")
	f.Add("kes:AD9E7FSYWrMD+VjhI6q545cYT9YOyFxZb7UnjEepYDRc")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		key, err := ParseAPIKey(s)
		if err != nil {
			return
		}
		again, err := ParseAPIKey(key.String())
		if err != nil {
			t.Fatalf("ParseAPIKey(String()) = %v", err)
		}
		if again.String() != key.String() || again.Identity() != key.Identity() {
			t.Fatalf("round trip changed the key")
		}
	})
}

func FuzzParseMetrics(f *testing.F) {
	f.Add(exposition)
	f.Add("kes_http_request_error{code=\"4\\\"0\\\\0\\n\",x=\"}\"} 3\n")
	f.Add("kes_http_response_time_bucket{le=\"+Inf\"} 1\n")
	f.Fuzz(func(t *testing.T, s string) {
		m, err := parseMetrics([]byte(s))
		if err != nil {
			return
		}
		if _, err := json.Marshal(m); err != nil {
			t.Fatalf("json.Marshal(%+v) = %v", m, err)
		}
	})
}

func FuzzDecodeError(f *testing.F) {
	f.Add(404, "application/json", "{\"message\":\"key does not exist\"\n}")
	f.Add(400, "application/json", `{"error":"key does already exist"}`)
	f.Add(404, "text/plain", "404 page not found\n")
	f.Fuzz(func(t *testing.T, code int, contentType, body string) {
		e := decodeError(code, contentType, []byte(body))
		if e.Status() != code {
			t.Fatalf("Status() = %d, want %d", e.Status(), code)
		}
	})
}

func FuzzStateJSON(f *testing.F) {
	f.Add(`{"version":"v","os":"linux","arch":"amd64","uptime":3,"num_cpu":2,"num_cpu_used":2,"mem_heap_used":3854080,"mem_stack_used":589824,"keystore_latency":1}`)
	f.Add(`{"uptime":1.5,"keystore_latency":-0.25,"keystore_unreachable":true}`)
	f.Fuzz(func(t *testing.T, s string) {
		var state State
		if json.Unmarshal([]byte(s), &state) != nil {
			return
		}
		b, err := json.Marshal(state)
		if err != nil {
			t.Fatalf("Marshal(%+v) = %v", state, err)
		}
		var again State
		if err := json.Unmarshal(b, &again); err != nil {
			t.Fatalf("Unmarshal(Marshal(%+v)) = %v", state, err)
		}
	})
}
