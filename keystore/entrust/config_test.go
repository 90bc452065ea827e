package entrust_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/openkes/openkes/config"
	_ "github.com/openkes/openkes/keystore/all"
	"github.com/openkes/openkes/keystore/entrust"
)

// TestConfigFile decodes sections in the original server's schema
// through the config package: ${VAR} references resolve into secrets,
// and Validate's errors get the section's path.
func TestConfigFile(t *testing.T) {
	t.Parallel()
	env := map[string]string{"SECRET": "entrust-password-9012"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }

	kind, conf, warnings, err := config.ParseKeyStore([]byte("keystore:\n  entrust:\n    keycontrol:\n      endpoint: https://keycontrol.example.net\n      vault_id: v-1\n      box_id: b-1\n      credentials:\n        username: kes\n        password: ${SECRET}\n      tls:\n        ca: /etc/kes/ca.pem\n"), lookup)
	if err != nil || kind != entrust.Kind || len(warnings) != 0 {
		t.Fatalf("ParseKeyStore = %q, %v, %q; want %q", kind, err, warnings, entrust.Kind)
	}
	c, ok := conf.(*entrust.Config)
	if !ok {
		t.Fatalf("ParseKeyStore returned a %T, want *entrust.Config", conf)
	}
	if c.Endpoint != "https://keycontrol.example.net" || c.VaultID != "v-1" || c.BoxID != "b-1" || c.Credentials.Username != "kes" || c.Credentials.Password.Reveal() != "entrust-password-9012" || c.TLS.CA != "/etc/kes/ca.pem" {
		t.Errorf("decoded config = %+v, want the section's values", c)
	}
	if s := strings.Join([]string{"%v", "%+v", "%#v"}, "|"); strings.Contains(sprintf(s, c), "entrust-password-9012") {
		t.Errorf("formatting the config shows the secret")
	}

	_, _, _, err = config.ParseKeyStore([]byte("keystore:\n  entrust:\n    keycontrol:\n      endpoint: https://keycontrol.example.net\n      vault_id: v-1\n      credentials:\n        username: kes\n        password: p\n"), lookup)
	if err == nil || !strings.Contains(err.Error(), "keystore.entrust.keycontrol.box_id: required (kesconf: invalid Entrust KeyControl keystore: no box ID specified)") {
		t.Errorf("ParseKeyStore of an incomplete section = %v, want an error containing %q", err, "keystore.entrust.keycontrol.box_id: required (kesconf: invalid Entrust KeyControl keystore: no box ID specified)")
	}
}

func sprintf(formats string, v any) string {
	var out []string
	for _, f := range strings.Split(formats, "|") {
		out = append(out, fmt.Sprintf(f, v))
	}
	return strings.Join(out, "\n")
}
