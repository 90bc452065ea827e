package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/openkes/openkes/kes"
)

const metricUsage = `Usage:
    kes metric [options]

Scrapes the metrics of a server at a fixed rate. On a terminal it shows a
live view, refreshed in place, with request and error rates and latency
percentiles computed from successive scrapes. Otherwise (or with --json)
it prints one JSON object per scrape and line, with the fields
kes_http_request_success, kes_http_request_error, kes_http_request_failure,
kes_http_request_active, kes_log_audit_events, kes_log_error_events,
kes_http_response_time (bucket bound in ns -> count), kes_system_up_time
(ns), kes_system_num_cpu, kes_system_num_cpu_used, kes_system_num_threads,
kes_system_mem_heap_used, kes_system_mem_heap_objects and
kes_system_mem_stack_used.

Options:
    --rate <duration>        Time between two scrapes. Default: 5s.
    -n, --count <n>          Stop after n scrapes. Default: 0, run until
                             interrupted (Ctrl-C).
    --json                   Print JSON on a terminal, too.
` + clientOptions + `
Examples:
    $ kes metric
    $ kes metric --rate 1s
    $ kes metric --count 1 | jq .kes_http_request_success
`

var metricCommand = &command{
	name:  "metric",
	usage: metricUsage,
	opts:  optConn | optJSON | optColor,
	flags: func(fs *flag.FlagSet) runFunc {
		rate := 5 * time.Second
		var count uint
		fs.DurationVar(&rate, "rate", rate, "")
		fs.UintVar(&count, "n", 0, "")
		fs.UintVar(&count, "count", 0, "")
		return func(ctx context.Context, c *call) error {
			if rate <= 0 {
				return c.usagef("invalid --rate %v: must be positive", rate)
			}
			s, err := c.connect()
			if err != nil {
				return err
			}
			if c.json || !c.outTTY {
				return scrapeJSON(ctx, c.env, s, rate, count)
			}
			return liveMetrics(ctx, c.env, s, rate, count)
		}
	},
}

// scrape calls scrapeOnce count times (forever if 0), rate apart. It
// returns nil when ctx ends.
func scrape(ctx context.Context, rate time.Duration, count uint, scrapeOnce func(n uint) error) error {
	ticker := time.NewTicker(rate)
	defer ticker.Stop()
	for n := uint(0); count == 0 || n < count; n++ {
		if n > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-ticker.C:
			}
		}
		if err := scrapeOnce(n); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
	return nil
}

func scrapeJSON(ctx context.Context, e *env, s *session, rate time.Duration, count uint) error {
	return scrape(ctx, rate, count, func(uint) error {
		m, err := s.client.Metrics(ctx)
		if err != nil {
			return s.fail(err, "failed to fetch metrics")
		}
		return e.printJSONLine(m)
	})
}

// Terminal control sequences of the live view.
const (
	clearScreen = "\x1b[H\x1b[2J"
	cursorHome  = "\x1b[H"
	clearLine   = "\x1b[K"
	clearBelow  = "\x1b[J"
	hideCursor  = "\x1b[?25l"
	showCursor  = "\x1b[?25h"
)

// sample is one scrape and its time.
type sample struct {
	at time.Time
	m  kes.Metric
}

func liveMetrics(ctx context.Context, e *env, s *session, rate time.Duration, count uint) error {
	io.WriteString(e.stdout, hideCursor+clearScreen)
	defer io.WriteString(e.stdout, showCursor)
	var prev, first *sample
	var lastErr error
	return scrape(ctx, rate, count, func(n uint) error {
		m, err := s.client.Metrics(ctx)
		if err != nil {
			if n == 0 || ctx.Err() != nil {
				// Nothing to show yet: most likely the settings are wrong.
				return s.fail(err, "failed to fetch metrics")
			}
			lastErr = err
		} else {
			lastErr = nil
			cur := &sample{at: time.Now(), m: m}
			if first == nil {
				first = cur
			}
			view := metricView{host: hostOf(s.client.Endpoints[0]), rate: rate, cur: cur, prev: prev}
			prev = cur
			frame := view.render(e)
			io.WriteString(e.stdout, cursorHome+frame)
		}
		if lastErr != nil {
			_, short := explain(lastErr)
			fmt.Fprintf(e.stdout, "\n%s%s%s", e.style(sgrRed).wrap("scrape failed: "+short.Error()), clearLine, clearBelow)
		}
		return nil
	})
}

// metricView is one frame of the live view: the latest scrape and, if
// there is one, the scrape before, from which rates are computed.
type metricView struct {
	host string
	rate time.Duration
	cur  *sample
	prev *sample // nil for the first frame
}

// render returns the frame; every line ends with "clear to end of line"
// and the frame with "clear below", so it overwrites the previous one.
func (v *metricView) render(e *env) string {
	bold, faint := e.style(sgrBold), e.style(sgrFaint)
	green, yellow, red := e.style(sgrGreen), e.style(sgrYellow), e.style(sgrRed)
	var lines []string
	add := func(format string, args ...any) { lines = append(lines, fmt.Sprintf(format, args...)) }

	cur := v.cur.m
	var prev kes.Metric
	window := "since start"
	var dt time.Duration
	if v.prev != nil {
		prev = v.prev.m
		dt = v.cur.at.Sub(v.prev.at)
		window = "last " + dt.Round(100*time.Millisecond).String()
	}
	r := computeRates(prev, cur, dt)

	add("%s  %s  %s", bold.wrap("KES metrics"), v.host, faint.wrap(fmt.Sprintf("every %v · %s · Ctrl-C to quit", v.rate, v.cur.at.Format(time.TimeOnly))))
	add("")
	add("%s", bold.wrap(fmt.Sprintf("%-16s %12s %12s", "Requests", "total", "per second")))
	add("%-16s %12d %12s", "  Success (2xx)", cur.RequestOK, rateString(r.ok, v.prev != nil))
	add("%-16s %12d %12s", "  Errors (4xx)", cur.RequestErr, yellowIf(yellow, r.err > 0, rateString(r.err, v.prev != nil)))
	add("%-16s %12d %12s", "  Failures (5xx)", cur.RequestFail, yellowIf(red, r.fail > 0, rateString(r.fail, v.prev != nil)))
	add("%-16s %12d", "  Active", cur.RequestActive)
	add("")
	errRate := "-"
	if r.total > 0 {
		errRate = fmt.Sprintf("%.1f%%", 100*float64(r.errors)/float64(r.total))
		switch {
		case r.errors == 0:
			errRate = green.wrap(errRate)
		case float64(r.errors)/float64(r.total) >= 0.05:
			errRate = red.wrap(errRate)
		default:
			errRate = yellow.wrap(errRate)
		}
	}
	add("%s %s", bold.wrap(fmt.Sprintf("%-16s", "Error rate")), errRate+faint.wrap(" ("+window+")"))
	lat := "-"
	if r.total > 0 {
		lat = fmt.Sprintf("p50 %s   p90 %s   p99 %s", r.p50, r.p90, r.p99)
	}
	add("%s %s", bold.wrap(fmt.Sprintf("%-16s", "Latency")), lat+faint.wrap(" ("+window+")"))
	add("")
	add("%s", bold.wrap("System"))
	add("  %-14s %s", "Uptime", humanDuration(cur.UpTime))
	add("  %-14s %d (%d used)", "CPUs", cur.CPUs, cur.UsableCPUs)
	add("  %-14s %d", "Threads", cur.Threads)
	add("  %-14s %s (%d objects)", "Heap", byteSize(cur.HeapAlloc), cur.HeapObjects)
	add("  %-14s %s", "Stack", byteSize(cur.StackAlloc))
	add("  %-14s audit %d · error %d", "Log events", cur.AuditEvents, cur.ErrorEvents)

	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l)
		b.WriteString(clearLine)
		b.WriteByte('\n')
	}
	b.WriteString(clearBelow)
	return b.String()
}

func yellowIf(st style, cond bool, s string) string {
	if cond {
		return st.wrap(s)
	}
	return s
}

// rateString formats a rate per second, or "-" without a previous scrape.
func rateString(r float64, ok bool) string {
	if !ok {
		return "-"
	}
	return fmt.Sprintf("%.1f", r)
}

// rates are what the live view derives from two scrapes.
type rates struct {
	ok, err, fail float64 // requests per second
	total, errors uint64  // requests, and 4xx+5xx responses, in the window
	p50, p90, p99 string  // latency percentiles, "-" if unknown
}

// computeRates derives rates and latency percentiles from the counters
// of two scrapes dt apart. With dt = 0 (the first scrape, prev the zero
// Metric) the rates are zero and the percentiles cover all requests since
// the server started. A counter that went down (a restarted server) is
// taken as counting from zero.
func computeRates(prev, cur kes.Metric, dt time.Duration) rates {
	delta := func(a, b uint64) uint64 {
		if b < a {
			return b
		}
		return b - a
	}
	ok, errs, fail := delta(prev.RequestOK, cur.RequestOK), delta(prev.RequestErr, cur.RequestErr), delta(prev.RequestFail, cur.RequestFail)
	r := rates{total: ok + errs + fail, errors: errs + fail}
	if secs := dt.Seconds(); secs > 0 {
		r.ok, r.err, r.fail = float64(ok)/secs, float64(errs)/secs, float64(fail)/secs
	}
	// The finer OpenKES histogram when the server has it: the upstream
	// one starts at 10 ms, below which most requests are answered.
	curHist, prevHist := cur.LatencyHistogram, prev.LatencyHistogram
	if cur.RequestDuration != nil {
		curHist, prevHist = cur.RequestDuration, prev.RequestDuration
	}
	hist := make(map[time.Duration]uint64, len(curHist))
	for bound, n := range curHist {
		hist[bound] = delta(prevHist[bound], n)
	}
	r.p50 = percentile(hist, r.total, 0.50)
	r.p90 = percentile(hist, r.total, 0.90)
	r.p99 = percentile(hist, r.total, 0.99)
	return r
}

// percentile estimates the q-quantile of the latencies from a cumulative
// histogram (upper bound -> requests that took at most that long) of
// total requests, interpolating linearly inside the bucket, as Prometheus'
// histogram_quantile does. Beyond the largest bound it returns
// "> <bound>".
func percentile(hist map[time.Duration]uint64, total uint64, q float64) string {
	if total == 0 || len(hist) == 0 {
		return "-"
	}
	bounds := slices.Sorted(func(yield func(time.Duration) bool) {
		for b := range hist {
			if !yield(b) {
				return
			}
		}
	})
	rank := q * float64(total)
	var lower time.Duration
	var below uint64
	for _, bound := range bounds {
		n := hist[bound]
		if n < below { // not monotonic: a scrape raced with requests
			n = below
		}
		if float64(n) >= rank {
			inBucket := float64(n - below)
			frac := 1.0
			if inBucket > 0 {
				frac = (rank - float64(below)) / inBucket
			}
			d := lower + time.Duration(math.Round(frac*float64(bound-lower)))
			return shortDuration(d)
		}
		lower, below = bound, n
	}
	return "> " + shortDuration(bounds[len(bounds)-1])
}
