package cli

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/openkes/openkes/internal/loadgen"
)

const benchUsage = `Usage:
    kes bench [options] <name>

Sends generate (or decrypt) requests for the key <name> to the first
server as fast as the server answers them, for a while, and prints the
requests per second, the latency percentiles of the successful requests
and the number of errors. Every connection carries --streams requests at
a time: on HTTP/2 as concurrent streams (what MinIO's client does), on
HTTP/1.1 one after the other. The key must exist and the identity must
be allowed to use it. Use it to size a fleet: run it from the machines
of the clients against one server.

Options:
    --http <version>         2 or 1.1. Default: 2.
    -c, --conns <n>          Connections. Default: 1.
    --streams <n>            Requests in flight per connection. Default: 64.
    -d, --duration <d>       How long to send. Default: 10s.
    --route <route>          generate or decrypt. Default: generate.
    --json                   Print one JSON object instead of text.
` + clientOptions + `
Examples:
    $ kes bench my-key
    $ kes bench --http 1.1 --conns 8 --streams 1 --duration 1m my-key
    $ kes bench --route decrypt --conns 4 my-key
`

var benchCommand = &command{
	name:  "bench",
	usage: benchUsage,
	opts:  optConn | optJSON | optColor,
	args:  argRule{min: 1, max: 1, what: "key name", names: 1},
	flags: func(fs *flag.FlagSet) runFunc {
		version, route := "2", "generate"
		conns, streams := 1, 64
		duration := 10 * time.Second
		stringFlag(fs, &version, "http")
		fs.IntVar(&conns, "c", conns, "")
		fs.IntVar(&conns, "conns", conns, "")
		fs.IntVar(&streams, "streams", streams, "")
		fs.DurationVar(&duration, "d", duration, "")
		fs.DurationVar(&duration, "duration", duration, "")
		stringFlag(fs, &route, "route")
		return func(ctx context.Context, c *call) error {
			switch {
			case version != "2" && version != "1.1":
				return c.usagef("invalid --http %q: must be 2 or 1.1", version)
			case conns < 1:
				return c.usagef("invalid --conns %d: must be at least 1", conns)
			case streams < 1:
				return c.usagef("invalid --streams %d: must be at least 1", streams)
			case duration <= 0:
				return c.usagef("invalid --duration %v: must be positive", duration)
			case route != "generate" && route != "decrypt":
				return c.usagef("invalid --route %q: must be generate or decrypt", route)
			}
			s, err := c.connect()
			if err != nil {
				return err
			}
			name := c.args[0]
			body := []byte(`{"context":"YmVuY2g="}`) // "bench"
			if route == "decrypt" {
				dek, err := s.client.GenerateKey(ctx, name, []byte("bench"))
				if err != nil {
					return s.fail(err, "failed to generate the ciphertext to decrypt")
				}
				body = []byte(`{"ciphertext":"` + base64.StdEncoding.EncodeToString(dek.Ciphertext) + `","context":"YmVuY2g="}`)
			}
			clients := make([]*http.Client, conns)
			for i := range clients {
				tr := loadgen.NewTransport(s.tls, version == "2")
				defer tr.CloseIdleConnections()
				clients[i] = &http.Client{Transport: tr}
			}
			lctx, cancel := context.WithTimeout(ctx, duration)
			defer cancel()
			res := loadgen.Run(lctx, loadgen.Options{
				Clients: clients,
				Streams: streams,
				URL:     s.endpoints[0] + "/v1/key/" + route + "/" + url.PathEscape(name),
				Body:    body,
			})
			if ctx.Err() != nil && res.Requests == 0 {
				return ctx.Err()
			}
			return printBench(c.stdout, c.json, &res)
		}
	},
}

// printBench prints what kes bench measured: a JSON object or lines of
// "name value".
func printBench(w io.Writer, jsonOut bool, res *loadgen.Result) error {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }
	if jsonOut {
		b, err := json.Marshal(struct {
			Requests int     `json:"requests"`
			Errors   int     `json:"errors"`
			Seconds  float64 `json:"seconds"`
			RPS      float64 `json:"rps"`
			P50      float64 `json:"p50_ms"`
			P90      float64 `json:"p90_ms"`
			P99      float64 `json:"p99_ms"`
			Error    string  `json:"first_error,omitempty"`
		}{res.Requests, res.Errors, res.Elapsed.Seconds(), res.RPS(), ms(res.Percentile(0.5)), ms(res.Percentile(0.9)), ms(res.Percentile(0.99)), errorText(res.FirstError)})
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "requests  %d\n", res.Requests)
	fmt.Fprintf(&b, "errors    %d\n", res.Errors)
	fmt.Fprintf(&b, "duration  %.1fs\n", res.Elapsed.Seconds())
	fmt.Fprintf(&b, "rps       %.1f\n", res.RPS())
	fmt.Fprintf(&b, "p50       %.3fms\n", ms(res.Percentile(0.5)))
	fmt.Fprintf(&b, "p90       %.3fms\n", ms(res.Percentile(0.9)))
	fmt.Fprintf(&b, "p99       %.3fms\n", ms(res.Percentile(0.99)))
	if res.FirstError != nil {
		fmt.Fprintf(&b, "first error: %v\n", res.FirstError)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func errorText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
