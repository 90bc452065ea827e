package server

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/openkes/openkes/internal/api"
)

// serve sends one request as the admin to the in-process server.
func (fs *fuzzServer) serve(method, path string, body []byte) *httptest.ResponseRecorder {
	r := &http.Request{
		Method:        method,
		URL:           &url.URL{Path: path},
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{},
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		Host:          "localhost",
		RemoteAddr:    "192.0.2.1:1234",
		TLS:           &tls.ConnectionState{HandshakeComplete: true, PeerCertificates: []*x509.Certificate{fs.admin}},
	}
	r.RequestURI = r.URL.RequestURI()
	rec := httptest.NewRecorder()
	fs.srv.Handler().ServeHTTP(rec, r)
	return rec
}

// FuzzLifecycleBodies sends arbitrary bodies to decrypt (with numeric,
// string or no version) and rewrap of a rotated key. Properties: no
// panic; decrypt answers 200 or 400 with "invalid request body" or the
// decrypt error; rewrap succeeds exactly when decrypt without a version
// does, with the newest version, and its ciphertext decrypts to the same
// plaintext.
func FuzzLifecycleBodies(f *testing.F) {
	fs := newFuzzServer(f)
	if rec := fs.serve("PUT", "/v1/key/rotate/my-key", nil); rec.Code != 200 {
		f.Fatalf("rotate: %d %s", rec.Code, rec.Body)
	}
	// Seeds: ciphertexts of both versions, with and without context.
	for _, ctx := range []string{"", `"context":"YWJj",`} {
		rec := fs.serve("PUT", "/v1/key/generate/my-key", []byte("{"+ctx+`"version":""}`))
		var d dek
		if err := json.Unmarshal(rec.Body.Bytes(), &d); err != nil || rec.Code != 200 {
			f.Fatalf("generate: %d %s", rec.Code, rec.Body)
		}
		ct, _ := json.Marshal(d.Ciphertext)
		for _, v := range []string{"", `,"version":2`, `,"version":1`, `,"version":"2"`, `,"version":-3`} {
			f.Add([]byte("{" + ctx + `"ciphertext":` + string(ct) + v + "}"))
		}
	}
	f.Add([]byte(`{"ciphertext":"S0VTdgAAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}`))
	f.Add([]byte(`{"ciphertext":"AAAA","version":1e400}`))
	f.Add([]byte(`{"ciphertext":"AAAA","version":[1]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		before := fs.log.panics.Load()
		dec := fs.serve("PUT", "/v1/key/decrypt/my-key", body)
		rw := fs.serve("PUT", "/v1/key/rewrap/my-key", body)
		if fs.log.panics.Load() != before {
			t.Fatalf("recovered panic: %v", fs.log.last.Load())
		}
		invalid := `{"message":"invalid request body"` + "\n}"
		failed := `{"message":"decryption failed: ciphertext is not authentic"` + "\n}"
		for _, rec := range []*httptest.ResponseRecorder{dec, rw} {
			if rec.Code == 400 && rec.Body.String() != invalid && rec.Body.String() != failed {
				t.Fatalf("400 %q", rec.Body)
			}
			if rec.Code != 200 && rec.Code != 400 {
				t.Fatalf("status %d %q", rec.Code, rec.Body)
			}
		}

		// Rewrap ignores "version": compare with decrypt without it.
		var req struct {
			Ciphertext []byte `json:"ciphertext"`
			Context    []byte `json:"context"`
		}
		var plain api.DecryptKeyResponse
		if rw.Code == 200 || dec.Code == 200 {
			if err := json.Unmarshal(body, &req); err != nil {
				t.Fatalf("answered %d/%d for a body json cannot decode: %v", dec.Code, rw.Code, err)
			}
			b, _ := json.Marshal(req)
			d := fs.serve("PUT", "/v1/key/decrypt/my-key", b)
			if (d.Code == 200) != (rw.Code == 200) {
				t.Fatalf("decrypt without version %d %q, rewrap %d %q", d.Code, d.Body, rw.Code, rw.Body)
			}
			if d.Code == 200 {
				if err := json.Unmarshal(d.Body.Bytes(), &plain); err != nil {
					t.Fatal(err)
				}
			}
		}
		if rw.Code != 200 {
			return
		}
		var out struct {
			Ciphertext []byte `json:"ciphertext"`
			Version    int    `json:"version"`
		}
		if err := json.Unmarshal(rw.Body.Bytes(), &out); err != nil || out.Version != 2 {
			t.Fatalf("rewrap answered %q (%v)", rw.Body, err)
		}
		req.Ciphertext = out.Ciphertext
		b, _ := json.Marshal(req)
		again := fs.serve("PUT", "/v1/key/decrypt/my-key", b)
		var got api.DecryptKeyResponse
		if err := json.Unmarshal(again.Body.Bytes(), &got); err != nil || again.Code != 200 || !bytes.Equal(got.Plaintext, plain.Plaintext) {
			t.Fatalf("rewrapped ciphertext decrypts to %d %q, want plaintext %x", again.Code, again.Body, plain.Plaintext)
		}
	})
}
