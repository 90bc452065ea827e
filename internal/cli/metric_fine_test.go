package cli

import (
	"testing"
	"time"

	"github.com/openkes/openkes/kes"
)

// TestComputeRatesFine checks that the percentiles come from the finer
// OpenKES histogram when the server reports it: with the upstream one
// every sub-millisecond request falls into its first (10 ms) bucket.
func TestComputeRatesFine(t *testing.T) {
	t.Parallel()
	us, ms := time.Microsecond, time.Millisecond
	cur := kes.Metric{RequestOK: 100,
		LatencyHistogram: map[time.Duration]uint64{10 * ms: 100, 100 * ms: 100},
		RequestDuration:  map[time.Duration]uint64{50 * us: 40, 100 * us: 90, 250 * us: 100, 10 * ms: 100},
	}
	r := computeRates(kes.Metric{}, cur, 0)
	if r.p50 != "60µs" || r.p99 != "235µs" {
		t.Errorf("p50 = %s, p99 = %s; want 60µs, 235µs", r.p50, r.p99)
	}
	cur.RequestDuration = nil // an upstream server
	r = computeRates(kes.Metric{}, cur, 0)
	if r.p50 != "5ms" {
		t.Errorf("without the fine histogram: p50 = %s, want 5ms", r.p50)
	}
}
