package cli

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/openkes/openkes/kes"
)

const statusUsage = `Usage:
    kes status [options]

Shows the status of each KES server: version, uptime, the round-trip
latency, OS, CPUs, memory and whether its key store is reachable (with
the latency of the key store). Fails (exit code 1) if a server cannot be
reached or cannot reach its key store.

Options:
    -s, --short              One line per server; with --json, no indentation.
    --api                    List the server's APIs instead.
    --json                   Print the status (or the APIs) as JSON: the
                             status of the first server that answers.
    --color <when>           Colour the output: auto, never or always.
    --server <host:port>     KES server(s), comma-separated. Default:
                             $KES_SERVER, else 127.0.0.1:7373.
    -a, --api-key <key>      API key. Default: $KES_API_KEY.
        --ca <path>          Trust the CA certificate(s) in this PEM file or
                             directory. Default: $KES_CA.
    -k, --insecure           Do not verify the server certificate.
    -h, --help               Print command line options.

Examples:
    $ kes status
    $ kes status --server kes-1:7373,kes-2:7373 --short
    $ kes status --api
    $ kes status --json | jq .version
`

var statusCommand = &command{
	name:  "status",
	usage: statusUsage,
	opts:  optConnLong | optJSON | optColor,
	flags: func(fs *flag.FlagSet) runFunc {
		var short, apis bool
		boolFlag(fs, &short, "s", "short")
		boolFlag(fs, &apis, "api")
		return connected(func(ctx context.Context, c *call, s *session) error {
			if apis {
				return showAPIs(ctx, c.env, s, c.json, short)
			}
			return showStatus(ctx, c.env, s, c.json, short)
		})
	},
}

// serverStatus is the status of one server, or the error of asking it.
type serverStatus struct {
	endpoint string
	state    kes.State
	latency  time.Duration // round trip of the status request
	err      error
}

// healthy reports whether the server and its key store are reachable.
func (st *serverStatus) healthy() bool { return st.err == nil && !st.state.KeyStoreUnreachable }

// queryStatus asks every endpoint for its status, concurrently.
func queryStatus(ctx context.Context, s *session) []serverStatus {
	results := make([]serverStatus, len(s.endpoints))
	var wg sync.WaitGroup
	for i, endpoint := range s.endpoints {
		wg.Go(func() {
			client := s.clientFor(endpoint)
			defer client.HTTPClient.CloseIdleConnections()
			start := time.Now()
			state, err := client.Status(ctx)
			results[i] = serverStatus{endpoint: endpoint, state: state, latency: time.Since(start), err: err}
		})
	}
	wg.Wait()
	return results
}

func showStatus(ctx context.Context, e *env, s *session, jsonOut, short bool) error {
	results := queryStatus(ctx, s)
	var failed []*serverStatus
	for i := range results {
		if !results[i].healthy() {
			failed = append(failed, &results[i])
		}
	}

	if jsonOut {
		i := slices.IndexFunc(results, func(st serverStatus) bool { return st.err == nil })
		if i < 0 {
			return s.fail(results[len(results)-1].err, "failed to get status")
		}
		if short {
			b, err := marshalJSON(results[i].state, false)
			if err != nil {
				return err
			}
			if e.outTTY {
				b = append(b, '\n')
			}
			if _, err := e.stdout.Write(b); err != nil {
				return err
			}
		} else if err := e.printJSON(results[i].state); err != nil {
			return err
		}
	} else if len(results) == 1 && results[0].err != nil {
		return s.fail(results[0].err, "failed to get status")
	} else {
		var b strings.Builder
		for i := range results {
			if short {
				e.writeStatusLine(&b, &results[i])
			} else {
				if i > 0 {
					b.WriteByte('\n')
				}
				e.writeStatus(&b, &results[i])
			}
		}
		io.WriteString(e.stdout, b.String())
	}

	switch {
	case len(failed) == 0:
		return nil
	case len(results) == 1 && failed[0].err == nil:
		return fmt.Errorf("the key store of %s is not reachable", hostOf(failed[0].endpoint))
	case len(results) == 1:
		return s.fail(failed[0].err, "failed to get status")
	default:
		return fmt.Errorf("%d of %d servers are offline or cannot reach their key store", len(failed), len(results))
	}
}

// writeStatus writes the status of one server as a block of lines.
func (e *env) writeStatus(b *strings.Builder, st *serverStatus) {
	green, red, label := e.style(sgrGreen), e.style(sgrRed), e.style(sgrBold)
	dot := green.wrap("●")
	if !st.healthy() {
		dot = red.wrap("●")
	}
	fmt.Fprintf(b, "%s %s\n", dot, hostOf(st.endpoint))
	row := func(name, value string) {
		fmt.Fprintf(b, "  %s%s %s\n", label.wrap(name), strings.Repeat(" ", 10-len(name)), value)
	}
	if st.err != nil {
		_, err := explain(st.err)
		row("Error", red.wrap(err.Error()))
		return
	}
	state := &st.state
	row("Version", state.Version)
	row("Uptime", humanDuration(state.UpTime))
	row("Latency", shortDuration(st.latency))
	row("OS", state.OS+"/"+state.Arch)
	row("CPUs", fmt.Sprintf("%d (%d used)", state.CPUs, state.UsableCPUs))
	row("Memory", fmt.Sprintf("Heap %s · Stack %s", byteSize(state.HeapAlloc), byteSize(state.StackAlloc)))
	if state.KeyStoreUnreachable {
		row("Key Store", red.wrap("unreachable"))
	} else {
		row("Key Store", fmt.Sprintf("%s (%s)", green.wrap("reachable"), shortDuration(state.KeyStoreLatency)))
	}
}

// writeStatusLine writes the status of one server as one line.
func (e *env) writeStatusLine(b *strings.Builder, st *serverStatus) {
	green, red := e.style(sgrGreen), e.style(sgrRed)
	switch {
	case st.err != nil:
		_, err := explain(st.err)
		fmt.Fprintf(b, "%s %s  %s  %v\n", red.wrap("●"), hostOf(st.endpoint), red.wrap("offline"), err)
	case st.state.KeyStoreUnreachable:
		fmt.Fprintf(b, "%s %s  %s  latency %s  key store %s\n", red.wrap("●"), hostOf(st.endpoint), green.wrap("online"), shortDuration(st.latency), red.wrap("unreachable"))
	default:
		fmt.Fprintf(b, "%s %s  %s  latency %s  key store %s %s\n", green.wrap("●"), hostOf(st.endpoint), green.wrap("online"), shortDuration(st.latency), green.wrap("reachable"), shortDuration(st.state.KeyStoreLatency))
	}
}

// showAPIs prints the routes of the first server that answers.
func showAPIs(ctx context.Context, e *env, s *session, jsonOut, short bool) error {
	apis, err := s.client.APIs(ctx)
	if err != nil {
		return s.fail(err, "failed to list APIs")
	}
	slices.SortFunc(apis, func(a, b kes.API) int { return cmp.Compare(a.Path, b.Path) })
	if jsonOut {
		if short {
			b, err := marshalJSON(apis, false)
			if err != nil {
				return err
			}
			_, err = e.stdout.Write(b)
			return err
		}
		return e.printJSON(apis)
	}
	header := e.style(sgrBold, sgrUnderline)
	var b strings.Builder
	fmt.Fprintf(&b, "%s  %s  %s\n", header.wrap(fmt.Sprintf("%-6s", "Method")), header.wrap(fmt.Sprintf("%-28s", "API")), header.wrap("Timeout"))
	for _, api := range apis {
		timeout := "Inf"
		if api.Timeout > 0 {
			timeout = api.Timeout.String()
		}
		fmt.Fprintf(&b, "%-6s  %-28s  %s\n", api.Method, api.Path, timeout)
	}
	_, err = io.WriteString(e.stdout, b.String())
	return err
}

// hostOf returns the host:port of an endpoint URL.
func hostOf(endpoint string) string {
	if u, err := url.Parse(endpoint); err == nil && u.Host != "" {
		return u.Host
	}
	return endpoint
}
