package gemalto_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/openkes/openkes/config"
	_ "github.com/openkes/openkes/keystore/all"
	"github.com/openkes/openkes/keystore/gemalto"
)

// TestConfigFile decodes sections in the original server's schema
// through the config package: ${VAR} references resolve into secrets,
// and Validate's errors get the section's path.
func TestConfigFile(t *testing.T) {
	t.Parallel()
	env := map[string]string{"SECRET": "ks-refresh-token-1234"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }

	kind, conf, warnings, err := config.ParseKeyStore([]byte("keystore:\n  gemalto:\n    keysecure:\n      endpoint: https://keysecure.example.net\n      credentials:\n        token: ${SECRET}\n        domain: kes\n        retry: 15s\n      tls:\n        ca: /etc/kes/ca.pem\n"), lookup)
	if err != nil || kind != gemalto.Kind || len(warnings) != 0 {
		t.Fatalf("ParseKeyStore = %q, %v, %q; want %q", kind, err, warnings, gemalto.Kind)
	}
	c, ok := conf.(*gemalto.Config)
	if !ok {
		t.Fatalf("ParseKeyStore returned a %T, want *gemalto.Config", conf)
	}
	if c.Endpoint != "https://keysecure.example.net" || c.Credentials.Token.Reveal() != "ks-refresh-token-1234" || c.Credentials.Domain != "kes" || c.TLS.CA != "/etc/kes/ca.pem" {
		t.Errorf("decoded config = %+v, want the section's values", c)
	}
	if s := strings.Join([]string{"%v", "%+v", "%#v"}, "|"); strings.Contains(sprintf(s, c), "ks-refresh-token-1234") {
		t.Errorf("formatting the config shows the secret")
	}

	_, _, _, err = config.ParseKeyStore([]byte("keystore:\n  gemalto:\n    keysecure:\n      endpoint: https://keysecure.example.net\n"), lookup)
	if err == nil || !strings.Contains(err.Error(), "keystore.gemalto.keysecure.credentials.token: required (kesconf: invalid gemalto keysecure keystore: no token specified)") {
		t.Errorf("ParseKeyStore of an incomplete section = %v, want an error containing %q", err, "keystore.gemalto.keysecure.credentials.token: required (kesconf: invalid gemalto keysecure keystore: no token specified)")
	}
}

func sprintf(formats string, v any) string {
	var out []string
	for _, f := range strings.Split(formats, "|") {
		out = append(out, fmt.Sprintf(f, v))
	}
	return strings.Join(out, "\n")
}
