package fortanix_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/openkes/openkes/config"
	_ "github.com/openkes/openkes/keystore/all"
	"github.com/openkes/openkes/keystore/fortanix"
)

// TestConfigFile decodes sections in the original server's schema
// through the config package: ${VAR} references resolve into secrets,
// and Validate's errors get the section's path.
func TestConfigFile(t *testing.T) {
	t.Parallel()
	env := map[string]string{"SECRET": "fortanix-api-key-5678"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }

	kind, conf, warnings, err := config.ParseKeyStore([]byte("keystore:\n  fortanix:\n    sdkms:\n      endpoint: https://sdkms.example.net\n      group_id: g-1\n      credentials:\n        key: ${SECRET}\n      tls:\n        ca: /etc/kes/ca.pem\n"), lookup)
	if err != nil || kind != fortanix.Kind || len(warnings) != 0 {
		t.Fatalf("ParseKeyStore = %q, %v, %q; want %q", kind, err, warnings, fortanix.Kind)
	}
	c, ok := conf.(*fortanix.Config)
	if !ok {
		t.Fatalf("ParseKeyStore returned a %T, want *fortanix.Config", conf)
	}
	if c.Endpoint != "https://sdkms.example.net" || c.GroupID != "g-1" || c.Credentials.Key.Reveal() != "fortanix-api-key-5678" || c.TLS.CA != "/etc/kes/ca.pem" {
		t.Errorf("decoded config = %+v, want the section's values", c)
	}
	if s := strings.Join([]string{"%v", "%+v", "%#v"}, "|"); strings.Contains(sprintf(s, c), "fortanix-api-key-5678") {
		t.Errorf("formatting the config shows the secret")
	}

	_, _, _, err = config.ParseKeyStore([]byte("keystore:\n  fortanix:\n    sdkms:\n      endpoint: https://sdkms.example.net\n"), lookup)
	if err == nil || !strings.Contains(err.Error(), "keystore.fortanix.sdkms.credentials.key: required (kesconf: invalid fortanix SDKMS keystore: no API key specified)") {
		t.Errorf("ParseKeyStore of an incomplete section = %v, want an error containing %q", err, "keystore.fortanix.sdkms.credentials.key: required (kesconf: invalid fortanix SDKMS keystore: no API key specified)")
	}
}

func sprintf(formats string, v any) string {
	var out []string
	for _, f := range strings.Split(formats, "|") {
		out = append(out, fmt.Sprintf(f, v))
	}
	return strings.Join(out, "\n")
}
