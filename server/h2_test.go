package server

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestHTTP2StreamDeadlines checks the deadlines of Serve's HTTP/2
// streams, which start with the write deadline h2StreamTimeout (here 1 s)
// and 3/4 of it for the body, so that the handlers only set the ones that
// differ: a stalled body is answered within its route's time whether the
// route's timeout is that of the streams (import) or another (decrypt),
// and a log stream (no timeout) outlives the streams' write deadline.
func TestHTTP2StreamDeadlines(t *testing.T) {
	t.Parallel()
	const d = time.Second
	e := startH1Env(t, nil, func(s *Server) { s.h2StreamTimeout = d }, func(c *Config) {
		c.Routes = map[string]RouteConfig{
			"/v1/key/import/":  {Timeout: d},
			"/v1/key/decrypt/": {Timeout: 2 * d},
		}
	}).env
	c := e.client(t, e.admin)

	for _, tt := range []struct{ path, want string }{
		{"/v1/key/import/x", "{\"message\":\"invalid import key request body\"\n}"},
		{"/v1/key/decrypt/x", "{\"message\":\"invalid request body\"\n}"},
	} {
		t.Run(tt.path, func(t *testing.T) {
			t.Parallel()
			pr, pw := io.Pipe()
			defer pw.Close()
			go io.WriteString(pw, "{") // and then nothing
			req, err := http.NewRequestWithContext(t.Context(), "PUT", e.url(tt.path), pr)
			if err != nil {
				t.Fatal(err)
			}
			req.ContentLength = 100
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.ProtoMajor != 2 {
				t.Errorf("HTTP/%d, want HTTP/2", resp.ProtoMajor)
			}
			if resp.StatusCode != http.StatusBadRequest || string(body) != tt.want {
				t.Errorf("got %s %q, want 400 %q", resp.Status, body, tt.want)
			}
		})
	}

	t.Run("log stream", func(t *testing.T) {
		t.Parallel()
		lines := openStream(t, e, "/v1/log/audit")
		time.Sleep(d + d/2) // past the write deadline streams start with
		do(t, c, "GET", e.url("/v1/status"), "").want(t, 200)
		waitLine(t, lines, func(l string) bool { return strings.Contains(l, `"/v1/status"`) })
	})
}
