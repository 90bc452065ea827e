package interop

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/kms-go/kes"
)

// TestSealRefusesPlantedKey plants a key file written by the original
// server into the directory of a sealed fs store, next to a sealed key:
// the server refuses to use it, with a 5xx that reveals nothing, and
// names the key in its error log. With seal.allow_unsealed it is used,
// and each read logged at WARN.
func TestSealRefusesPlantedKey(t *testing.T) {
	t.Parallel()
	planted, err := os.ReadFile(filepath.Join(fixtureDir, "keystore", "fixture-generated"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		allow bool
	}{
		{name: "refused"},
		{name: "allow_unsealed", allow: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			keyStore := "  fs:\n    path: keys\n    seal:\n      kek_file: kek\n"
			if tc.allow {
				keyStore += "      allow_unsealed: true\n"
			}
			srv, c := startAdminServer(t, serverOptions{
				KeyStore: keyStore,
				Files:    map[string][]byte{"kek": newKEKFile(t)},
				KeyFiles: map[string][]byte{"planted": planted},
			})
			ctx := t.Context()
			if err := c.CreateKey(ctx, "sealed"); err != nil {
				t.Fatal(err)
			}
			if _, err := c.GenerateKey(ctx, "sealed", nil); err != nil {
				t.Fatalf("GenerateKey(sealed) = %v", err)
			}

			_, err := c.GenerateKey(ctx, "planted", nil)
			if tc.allow {
				if err != nil {
					t.Fatalf("GenerateKey(planted) with allow_unsealed = %v, want success", err)
				}
				waitFor(t, 5*time.Second, "a WARN line naming the key", func() bool {
					out := srv.Stdout.String() + srv.Stderr.String()
					return strings.Contains(out, "key=planted") && strings.Contains(out, "WARN")
				})
				return
			}
			var e kes.Error
			if !errors.As(err, &e) || e.Status() < 500 {
				t.Fatalf("GenerateKey(planted) = %v, want a 5xx error", err)
			}
			if e.Status() == http.StatusGatewayTimeout || strings.Contains(e.Error(), "planted") || strings.Contains(e.Error(), "unsealed") {
				t.Errorf("GenerateKey(planted) = %d %q: want the generic error, without details", e.Status(), e.Error())
			}
			waitFor(t, 5*time.Second, "the error log to name the key", func() bool {
				return strings.Contains(srv.Stdout.String()+srv.Stderr.String(), `key \"planted\" is stored unsealed`)
			})
			if out := srv.Stdout.String() + srv.Stderr.String(); strings.Contains(out, string(planted[10:40])) {
				t.Errorf("the server's output shows the planted value:\n%s", out)
			}
		})
	}
}
