package azure

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
)

// FuzzResponseError parses error bodies of Key Vault: no panic, and the
// status is kept.
func FuzzResponseError(f *testing.F) {
	f.Add(409, []byte(`{"error":{"code":"Conflict","message":"gone","innererror":{"code":"ObjectIsBeingDeleted"}}}`))
	f.Add(403, []byte(`{"error":{"code":"Forbidden","innererror":null}}`))
	f.Add(500, []byte(`not json`))
	f.Add(404, []byte(``))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		if status < 100 || status > 999 {
			return
		}
		resp := &http.Response{
			StatusCode: status,
			Header:     http.Header{"Content-Type": {"application/json"}},
			Body:       io.NopCloser(bytes.NewReader(body)),
			Request:    &http.Request{Method: http.MethodGet, URL: &url.URL{Scheme: "https", Host: "kes.vault.test", Path: "/secrets/x"}},
		}
		re, ok := asResponseError(runtime.NewResponseError(resp))
		if !ok {
			t.Fatal("asResponseError() = false for a response error")
		}
		if re.Status != status {
			t.Fatalf("Status = %d, want %d", re.Status, status)
		}
		if msg := re.Error(); !strings.HasPrefix(msg, strconv.Itoa(status)+" ") {
			t.Fatalf("Error() = %q, want it to start with the status", msg)
		}
	})
}
