package server

import (
	"crypto/tls"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"
)

// BenchmarkStalledHeaderMemory measures the heap kept per connection
// that sends an almost maximal (1 MB) header and never finishes it, for
// the own HTTP/1.1 loop and for net/http's. Run it once:
//
//	go test ./server -run '^$' -bench StalledHeaderMemory -benchtime 1x
func BenchmarkStalledHeaderMemory(b *testing.B) {
	for _, stdlib := range []bool{false, true} {
		b.Run(map[bool]string{false: "own", true: "stdlib"}[stdlib], func(b *testing.B) {
			const conns = 40
			e := newEnv(b, func(c *Config) { c.HTTP1Stdlib = stdlib })
			pad := "GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Pad: " + strings.Repeat("a", 1<<20-100)
			for range b.N {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				var open []*tls.Conn
				for range conns {
					conf := e.clientTLS(e.user)
					conf.NextProtos = []string{"http/1.1"}
					c, err := tls.Dial("tcp", e.addr, conf)
					if err != nil {
						b.Fatal(err)
					}
					open = append(open, c)
					c.SetWriteDeadline(time.Now().Add(3 * time.Second))
					if _, err := io.WriteString(c, pad); err != nil {
						b.Fatal(err)
					}
				}
				time.Sleep(200 * time.Millisecond) // the server reads the rest
				runtime.GC()
				runtime.ReadMemStats(&after)
				b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/conns, "heap-B/conn")
				for _, c := range open {
					c.Close()
				}
			}
		})
	}
}
