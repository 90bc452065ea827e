// Package loadgen drives a KES server with POST requests from concurrent
// workers and measures throughput and latency: the engine of 'kes bench'
// and of the server's end-to-end benchmarks.
package loadgen

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Options describe a load.
type Options struct {
	// Clients are the clients the workers send with; Streams workers
	// share each one. A client of NewTransport holds one connection, so
	// len(Clients) is the number of connections.
	Clients []*http.Client
	Streams int // concurrent requests per client; at least 1

	URL  string // every request is POST URL with Body
	Body []byte

	// Requests ends the load after that many requests; 0 runs it until
	// ctx is done.
	Requests int
}

// Result is what a load measured. Every answer other than 200 and every
// transport failure counts as an error.
type Result struct {
	Requests int           // sent, including the failed ones
	Errors   int           // failed
	Resumed  int           // answered on a resumed TLS session
	Elapsed  time.Duration // from the first request to the last answer
	// FirstError describes the first failure, if any.
	FirstError error

	latencies []time.Duration // sorted; of the successful requests
}

// RPS returns the requests per second.
func (r *Result) RPS() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests) / r.Elapsed.Seconds()
}

// Percentile returns the latency that the fraction q (0..1) of the
// successful requests did not exceed, or 0 without any.
func (r *Result) Percentile(q float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	i := int(q * float64(len(r.latencies)))
	return r.latencies[min(max(i, 0), len(r.latencies)-1)]
}

// Run sends the load and returns what it measured.
func Run(ctx context.Context, o Options) Result {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		res  Result
		sent atomic.Int64
	)
	start := time.Now()
	for _, c := range o.Clients {
		for range max(o.Streams, 1) {
			wg.Go(func() {
				w := worker{c: c, url: o.URL, body: o.Body, buf: make([]byte, 512)}
				for ctx.Err() == nil && (o.Requests == 0 || sent.Add(1) <= int64(o.Requests)) {
					w.do(ctx)
				}
				mu.Lock()
				defer mu.Unlock()
				res.Requests += w.requests
				res.Errors += w.errors
				res.Resumed += w.resumed
				res.latencies = append(res.latencies, w.latencies...)
				if res.FirstError == nil {
					res.FirstError = w.firstError
				}
			})
		}
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	slices.Sort(res.latencies)
	return res
}

// worker sends requests one after the other.
type worker struct {
	c         *http.Client
	url       string
	body      []byte
	buf       []byte
	requests  int
	errors    int
	resumed   int
	latencies []time.Duration

	firstError error
}

func (w *worker) do(ctx context.Context) {
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, "POST", w.url, bytes.NewReader(w.body))
	if err != nil {
		w.fail(err)
		return
	}
	resp, err := w.c.Do(req)
	if err != nil {
		if ctx.Err() == nil { // not the end of the load
			w.fail(err)
		}
		return
	}
	n, _ := io.ReadFull(resp.Body, w.buf)
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	latency := time.Since(start)
	switch {
	case resp.StatusCode != http.StatusOK:
		w.fail(statusError(resp.Status, w.buf[:n]))
		return
	case err != nil:
		if ctx.Err() == nil {
			w.fail(err)
		}
		return
	}
	w.requests++
	w.latencies = append(w.latencies, latency)
	if resp.TLS != nil && resp.TLS.DidResume {
		w.resumed++
	}
}

// statusError describes a failed answer: the status and the message of
// a KES error body, or the start of any other body.
func statusError(status string, body []byte) error {
	var e struct{ Message string }
	if json.Unmarshal(body, &e) == nil && e.Message != "" {
		return fmt.Errorf("%s: %s", status, e.Message)
	}
	return fmt.Errorf("%s: %q", status, bytes.TrimSpace(body))
}

func (w *worker) fail(err error) {
	w.requests++
	w.errors++
	if w.firstError == nil {
		w.firstError = err
	}
}

// NewTransport returns a transport that keeps one connection to the
// server, with TLS config conf: HTTP/2 if h2 (all requests are streams
// on that connection), else HTTP/1.1 (requests take turns on it).
func NewTransport(conf *tls.Config, h2 bool) *http.Transport {
	tr := &http.Transport{
		TLSClientConfig:     conf.Clone(),
		MaxConnsPerHost:     1,
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     time.Minute,
		Protocols:           new(http.Protocols),
	}
	if h2 {
		tr.Protocols.SetHTTP2(true)
	} else {
		tr.Protocols.SetHTTP1(true)
	}
	return tr
}
