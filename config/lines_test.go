package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestReadFileLocations checks that ReadFile names the file and the line
// of every error and warning, and reports the warnings of a file that
// also has errors.
func TestReadFileLocations(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "kes.yml")
	data := strings.Join([]string{
		"admin:",                      // 1
		"  identity: disabled",        // 2
		"tls:",                        // 3
		"  key: k",                    // 4
		"  cert: c",                   // 5
		"  auth: maybe",               // 6: error
		"policy:",                     // 7
		"  app:",                      // 8
		"    allow:",                  // 9
		"    - /v1/key/genrate/app-*", // 10: warning
		"    identities: [not-an-id]", // 11: warning
		"cache:",                      // 12
		"  expiry: {any: -1s}",        // 13: error
		"keystore:",                   // 14
		"  fs: {}",                    // 15: error
		"colour: blue",                // 16: warning
		"",
	}, "\n")
	if err := os.WriteFile(file, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := ReadFile(file)
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("ReadFile error = %v (%T), want *Error", err, err)
	}
	wantErr := []string{
		file + ":6: tls.auth: invalid value 'maybe' (use on or off)",
		file + ":13: cache.expiry.any: invalid duration '-1s'",
		file + ":15: keystore.fs.path: required",
	}
	if diff := cmp.Diff(wantErr, strings.Split(err.Error(), "\n")); diff != "" {
		t.Errorf("errors mismatch (-want +got):\n%s", diff)
	}
	wantWarn := []string{
		file + ":16: colour: unknown key, ignored",
		file + `:10: policy.app.allow[0]: pattern "/v1/key/genrate/app-*" matches no API path (did you mean "/v1/key/generate/"?)`,
		file + ":11: policy.app.identities[0]: identity 'not-an-id' is not a 64-character hex SHA-256 (see kes identity of); no client has it",
	}
	if diff := cmp.Diff(wantWarn, ce.Warnings); diff != "" {
		t.Errorf("warnings mismatch (-want +got):\n%s", diff)
	}
	for _, p := range ce.Problems {
		if p.Line == 0 {
			t.Errorf("problem %v has no line", p)
		}
	}

	// A YAML syntax error names the file too.
	if err := os.WriteFile(file, []byte("tls: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(file); err == nil || !strings.HasPrefix(err.Error(), file+": yaml: line") {
		t.Errorf("ReadFile of broken YAML = %v, want %q...", err, file+": yaml: line")
	}
}
