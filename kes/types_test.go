package kes

import (
	"encoding/json"
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestStateJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		json    string
		want    State
		wantErr bool
		// canonical is the re-encoding; "" means json itself.
		canonical string
	}{
		{
			name: "server example",
			json: `{"version":"v","os":"linux","arch":"amd64","uptime":3,"num_cpu":2,"num_cpu_used":2,"mem_heap_used":3854080,"mem_stack_used":589824,"keystore_latency":1}`,
			want: State{Version: "v", OS: "linux", Arch: "amd64", UpTime: 3 * time.Second, CPUs: 2, UsableCPUs: 2, HeapAlloc: 3854080, StackAlloc: 589824, KeyStoreLatency: time.Millisecond},
		},
		{
			name: "unreachable",
			json: `{"version":"v","os":"linux","arch":"amd64","uptime":0,"num_cpu":1,"num_cpu_used":1,"mem_heap_used":0,"mem_stack_used":0,"keystore_unreachable":true}`,
			want: State{Version: "v", OS: "linux", Arch: "amd64", CPUs: 1, UsableCPUs: 1, KeyStoreUnreachable: true},
		},
		{
			name:      "float uptime and latency",
			json:      `{"uptime":1.5,"keystore_latency":0.25,"keystore_unavailable":true}`,
			want:      State{UpTime: 1500 * time.Millisecond, KeyStoreLatency: 250 * time.Microsecond},
			canonical: `{"version":"","os":"","arch":"","uptime":2,"num_cpu":0,"num_cpu_used":0,"mem_heap_used":0,"mem_stack_used":0,"keystore_latency":1}`,
		},
		{name: "uptime overflow", json: `{"uptime":9223372036854775807}`, wantErr: true},
		{name: "float uptime overflow", json: `{"uptime":1e300}`, wantErr: true},
		{name: "latency not a number", json: `{"keystore_latency":"1ms"}`, wantErr: true},
		{name: "not an object", json: `[]`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got State
			err := json.Unmarshal([]byte(tt.json), &got)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Unmarshal(%s) error = %v, want error %v", tt.json, err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Unmarshal(%s) mismatch (-want +got):\n%s", tt.json, diff)
			}
			b, err := json.Marshal(got)
			if err != nil {
				t.Fatal(err)
			}
			want := tt.canonical
			if want == "" {
				want = tt.json
			}
			if string(b) != want {
				t.Errorf("Marshal = %s, want %s", b, want)
			}
		})
	}
}

func TestKeyAlgorithm(t *testing.T) {
	t.Parallel()
	// A failed UnmarshalText leaves the value as it was (99).
	unmarshal := func(s string) (KeyAlgorithm, error) {
		got := KeyAlgorithm(99)
		err := got.UnmarshalText([]byte(s))
		return got, err
	}
	testParse(t, "UnmarshalText", unmarshal, []parseCase[KeyAlgorithm]{
		{"AES256", "AES256", AES256, false},
		{"AES256 legacy", "AES256-GCM_SHA256", AES256, false},
		{"ChaCha20", "ChaCha20", ChaCha20, false},
		{"ChaCha20 legacy", "XCHACHA20-POLY1305", ChaCha20, false},
		{"case sensitive", "aes256", 99, true},
		{"empty", "", 99, true},
		{"unknown", "AES128", 99, true},
	})

	marshal := []struct {
		alg     KeyAlgorithm
		want    string
		wantErr bool
	}{
		{AES256, "AES256", false},
		{ChaCha20, "ChaCha20", false},
		{2, "%!KeyAlgorithm(2)", true},
	}
	for _, tt := range marshal {
		if got := tt.alg.String(); got != tt.want {
			t.Errorf("KeyAlgorithm(%d).String() = %q, want %q", uint(tt.alg), got, tt.want)
		}
		b, err := tt.alg.MarshalText()
		if (err != nil) != tt.wantErr || (err == nil && string(b) != tt.want) {
			t.Errorf("KeyAlgorithm(%d).MarshalText() = %q, %v; want %q, error %v", uint(tt.alg), b, err, tt.want, tt.wantErr)
		}
	}
}

func TestAPIJSON(t *testing.T) {
	t.Parallel()
	in := `{"method":"PUT","path":"/v1/key/create/","max_body":0,"timeout":15}`
	var api API
	if err := json.Unmarshal([]byte(in), &api); err != nil {
		t.Fatal(err)
	}
	if want := (API{Method: "PUT", Path: "/v1/key/create/", Timeout: 15 * time.Second}); api != want {
		t.Errorf("Unmarshal = %+v, want %+v", api, want)
	}
	b, err := json.Marshal(api)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != in {
		t.Errorf("Marshal = %s, want %s", b, in)
	}
	if err := json.Unmarshal([]byte(`{"timeout":"15s"}`), &api); err == nil {
		t.Error("Unmarshal(timeout string) succeeded, want error")
	}
}

func TestDurationOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		unit    time.Duration
		want    time.Duration
		wantErr bool
	}{
		{"", time.Second, 0, false},
		{"0", time.Second, 0, false},
		{"-2", time.Millisecond, -2 * time.Millisecond, false},
		{"1e3", time.Millisecond, time.Second, false},
		{strconv.FormatInt(math.MaxInt64/int64(time.Second), 10), time.Second, math.MaxInt64 / time.Second * time.Second, false},
		{strconv.FormatInt(math.MaxInt64/int64(time.Second)+1, 10), time.Second, 0, true},
		{"9223372036854775807", 1, math.MaxInt64, false},
		{"9223372036854775808", 1, 0, true},
		{"x", time.Second, 0, true},
	}
	for _, tt := range tests {
		got, err := durationOf(json.Number(tt.in), tt.unit)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("durationOf(%q, %v) = %v, %v; want %v, error %v", tt.in, tt.unit, got, err, tt.want, tt.wantErr)
		}
	}
}
