package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// discardAudit is an AuditHandler that drops every record.
type discardAudit struct{}

func (discardAudit) HandleAudit(context.Context, *AuditRecord) {}

// BenchmarkStalledSubscriber measures the throughput of 10,000 encrypt
// requests per iteration, sent by 100 goroutines over real TLS
// (HTTP/1.1 keep-alive), with no log-stream subscriber and with one
// subscriber on /v1/log/audit that connects and never reads ("stalled"),
// and, for comparison, with one that reads everything. Publishing
// never blocks, so the stalled subscriber only loses events (counted in
// kes_log_audit_dropped_events_total); compare the req/s of both. It
// asserts nothing about timing.
//
//	go test ./server/ -run '^$' -bench StalledSubscriber -benchtime 3x
func BenchmarkStalledSubscriber(b *testing.B) {
	const (
		requests = 10_000
		workers  = 100
	)
	for _, name := range []string{"none", "stalled", "reading"} {
		b.Run(name, func(b *testing.B) {
			e := newEnv(b, func(c *Config) {
				c.AuditLog = discardAudit{}
				c.ErrorLog = nil
				c.Keys = []string{"k"}
			})
			if name != "none" {
				conn, err := tls.Dial("tcp", e.addr, e.clientTLS(e.admin))
				if err != nil {
					b.Fatal(err)
				}
				defer conn.Close()
				fmt.Fprintf(conn, "GET /v1/log/audit HTTP/1.1\r\nHost: localhost\r\n\r\n")
				// "stalled" reads the response header only, then never
				// again; "reading" (for comparison) drains the stream.
				resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
				if err != nil || resp.StatusCode != 200 {
					b.Fatalf("subscribe: %v %v", resp, err)
				}
				if name == "reading" {
					go io.Copy(io.Discard, resp.Body)
				}
				if !e.srv.auditHub.active() {
					b.Fatal("subscriber not registered")
				}
			}
			tr := &http.Transport{TLSClientConfig: e.clientTLS(e.admin), MaxIdleConnsPerHost: workers}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr, Timeout: time.Minute}
			const body = `{"plaintext":"aGVsbG8gd29ybGQ="}`
			send := func() error {
				resp, err := c.Post(e.url("/v1/key/encrypt/k"), "application/json", strings.NewReader(body))
				if err != nil {
					return err
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					return fmt.Errorf("status %d", resp.StatusCode)
				}
				return nil
			}
			if err := send(); err != nil { // warm up the key cache
				b.Fatal(err)
			}
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				var wg sync.WaitGroup
				errs := make(chan error, workers)
				for w := range workers {
					n := requests / workers
					if w < requests%workers {
						n++
					}
					wg.Go(func() {
						for range n {
							if err := send(); err != nil {
								errs <- err
								return
							}
						}
					})
				}
				wg.Wait()
				close(errs)
				if err := <-errs; err != nil {
					b.Fatal(err)
				}
			}
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(requests*b.N)/elapsed.Seconds(), "req/s")
			b.ReportMetric(counterValue(b, e.srv.metrics.x.auditDropped)/float64(b.N), "dropped/op")
		})
	}
}
