// Package h1 is the HTTP/1.1 request loop of the KES server: it serves
// HTTP/1.1 on connections that package server accepted and handshook
// itself, with net/http's wire behaviour and less CPU per request.
//
// # When it is used
//
// server.Serve hands every TLS connection that negotiated ALPN
// "http/1.1" (or no ALPN) to [Server.ServeConn]. net/http's server is
// used instead for HTTP/2 connections, always, and for HTTP/1.1 ones
// when the configuration sets server.Config.HTTP1Stdlib (the kes
// command sets it when the environment has OPENKES_HTTP1=stdlib); it is
// read per accepted connection, so it works as a kill switch at
// runtime. [Serve] is a small entry point of its own for tests and
// tools.
//
// # What differs from net/http
//
// net/http's HTTP/1 server spends several µs of CPU per keep-alive
// request on things the KES server does not need (server's
// BenchmarkE2E*: compare "raw" with "baseline"): a background read per
// request, three read-deadline changes, connection state tracking under
// a mutex, a header map clone, a chunking writer. This loop serves the
// same protocol with less:
//
//   - requests are parsed by http.ReadRequest, so the parsing rules
//     (keep-alive, chunked bodies, Content-Length/Transfer-Encoding
//     rules, header limits) are net/http's;
//   - the response is buffered and written with one Write when the
//     handler returns, with the headers net/http would send, in its order
//     (status line, handler headers sorted, then Date, Content-Length,
//     Content-Type, Connection, Transfer-Encoding). A handler that
//     flushes, or writes more than 2 KiB without a Content-Length, gets
//     the chunked encoding with the chunk boundaries net/http would
//     produce;
//   - the connection is only read in the background, to notice a client
//     that went away, once a handler streams (Flush), as the log streams
//     do; other handlers are short and bounded by their route timeout;
//   - a header that arrives in pieces is scanned as it is read (the Host
//     and field-name checks of net/http's server), never copied, so a
//     stalled header costs what it costs in net/http.
//
// # Deadlines
//
// The write deadline the handler sets ([ResponseWriter.SetWriteTimeout]
// or http.ResponseController) is applied when the response is written.
// While waiting for a request the read deadline is Timeouts.Idle (90 s);
// a header that is not complete in the first bytes received must be
// complete within Timeouts.ReadHeader (5 s) from then, the first request
// of a connection within 5 s of ServeConn. Unlike net/http, which reads
// bodies without deadline, a body must arrive within Timeouts.Body
// (15 s) or 3/4 of the route timeout the handler sets, whichever ends
// first,
// and the rest of a body the handler left unread (at most 256 KiB, as in
// net/http) is read for at most Timeouts.Drain (1 s) before the answer
// goes out with "Connection: close": a client that announces a body and
// never sends it cannot hold a connection and its answer. A request
// whose header arrives with its first bytes is never given a header
// deadline of its own (it needs none), and an idle or write deadline
// already set on the connection is kept if it is at most 1/64 of its
// timeout earlier than the exact one (keepDeadline), which saves a timer
// update on most requests.
//
// Unlike net/http, a request's context is the connection's: it is not
// cancelled when the handler returns, nor when the client goes away
// while a handler that does not stream runs (it ends with the connection
// or at Close). Not supported, because no handler of the KES server uses
// them: Hijack, trailers, full-duplex mode.
//
// # Tests
//
// FuzzDifferential sends the same random bytes to this loop and to
// net/http's server with the same handler and requires the same answer.
// server's TestHTTP1Identical and TestHTTP1WriterIdentical compare the
// bytes of both for every route, error and protocol corner, and the
// golden transcripts of internal/api are checked against both.
package h1
