//go:build !kes_omit_entrust && !kes_omit_fortanix && !kes_omit_gemalto

package all_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/openkes/openkes/config"
	"github.com/openkes/openkes/keystore"
	"github.com/openkes/openkes/keystore/entrust"
	"github.com/openkes/openkes/keystore/fortanix"
	"github.com/openkes/openkes/keystore/gemalto"
	"github.com/openkes/openkes/keystore/keystoretest"
)

// TestRESTConfigFiles decodes sections of the REST key stores in the
// original server's schema through the config package: ${VAR}
// references resolve into secrets that formatting the config does not
// show, and Validate's errors get the section's path.
func TestRESTConfigFiles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		kind       string
		section    string // the YAML of the section, with ${SECRET}
		secret     string // the value of SECRET
		check      func(keystore.Config) bool
		incomplete string // a section that fails Validate
		wantErr    string
	}{
		{
			kind:    entrust.Kind,
			section: "keystore:\n  entrust:\n    keycontrol:\n      endpoint: https://keycontrol.example.net\n      vault_id: v-1\n      box_id: b-1\n      credentials:\n        username: kes\n        password: ${SECRET}\n      tls:\n        ca: /etc/kes/ca.pem\n",
			secret:  "entrust-password-9012",
			check: func(conf keystore.Config) bool {
				c, ok := conf.(*entrust.Config)
				return ok && c.Endpoint == "https://keycontrol.example.net" && c.VaultID == "v-1" && c.BoxID == "b-1" && c.Credentials.Username == "kes" && c.Credentials.Password.Reveal() == "entrust-password-9012" && c.TLS.CA == "/etc/kes/ca.pem"
			},
			incomplete: "keystore:\n  entrust:\n    keycontrol:\n      endpoint: https://keycontrol.example.net\n      vault_id: v-1\n      credentials:\n        username: kes\n        password: p\n",
			wantErr:    "keystore.entrust.keycontrol.box_id: required (kesconf: invalid Entrust KeyControl keystore: no box ID specified)",
		},
		{
			kind:    fortanix.Kind,
			section: "keystore:\n  fortanix:\n    sdkms:\n      endpoint: https://sdkms.example.net\n      group_id: g-1\n      credentials:\n        key: ${SECRET}\n      tls:\n        ca: /etc/kes/ca.pem\n",
			secret:  "fortanix-api-key-5678",
			check: func(conf keystore.Config) bool {
				c, ok := conf.(*fortanix.Config)
				return ok && c.Endpoint == "https://sdkms.example.net" && c.GroupID == "g-1" && c.Credentials.Key.Reveal() == "fortanix-api-key-5678" && c.TLS.CA == "/etc/kes/ca.pem"
			},
			incomplete: "keystore:\n  fortanix:\n    sdkms:\n      endpoint: https://sdkms.example.net\n",
			wantErr:    "keystore.fortanix.sdkms.credentials.key: required (kesconf: invalid fortanix SDKMS keystore: no API key specified)",
		},
		{
			kind:    gemalto.Kind,
			section: "keystore:\n  gemalto:\n    keysecure:\n      endpoint: https://keysecure.example.net\n      credentials:\n        token: ${SECRET}\n        domain: kes\n        retry: 15s\n      tls:\n        ca: /etc/kes/ca.pem\n",
			secret:  "ks-refresh-token-1234",
			check: func(conf keystore.Config) bool {
				c, ok := conf.(*gemalto.Config)
				return ok && c.Endpoint == "https://keysecure.example.net" && c.Credentials.Token.Reveal() == "ks-refresh-token-1234" && c.Credentials.Domain == "kes" && c.TLS.CA == "/etc/kes/ca.pem"
			},
			incomplete: "keystore:\n  gemalto:\n    keysecure:\n      endpoint: https://keysecure.example.net\n",
			wantErr:    "keystore.gemalto.keysecure.credentials.token: required (kesconf: invalid gemalto keysecure keystore: no token specified)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			t.Parallel()
			lookup := func(k string) (string, bool) { return tt.secret, k == "SECRET" }
			kind, conf, warnings, err := config.ParseKeyStore([]byte(tt.section), lookup)
			if err != nil || kind != tt.kind || len(warnings) != 0 {
				t.Fatalf("ParseKeyStore = %q, %v, %q; want %q", kind, err, warnings, tt.kind)
			}
			if !tt.check(conf) {
				t.Errorf("decoded config = %T %+v, want the section's values", conf, conf)
			}
			for _, f := range []string{"%v", "%+v", "%#v"} {
				if strings.Contains(fmt.Sprintf(f, conf), tt.secret) {
					t.Errorf("formatting the config with %s shows the secret", f)
				}
			}
			_, _, _, err = config.ParseKeyStore([]byte(tt.incomplete), lookup)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseKeyStore of an incomplete section = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestRESTValidate checks that Validate of the REST key stores' configs
// returns every problem, one a line, each naming its field relative to
// the section, followed by the original server's message.
func TestRESTValidate(t *testing.T) {
	t.Parallel()
	const e, f, g = "Entrust KeyControl", "fortanix SDKMS", "gemalto keysecure"
	// required is the message of a missing field of the store.
	required := func(store, field, what string) string {
		return field + ": required (kesconf: invalid " + store + " keystore: no " + what + " specified)"
	}
	entrustConf := func(box string) *entrust.Config {
		c := &entrust.Config{Endpoint: "https://keycontrol", VaultID: "v", BoxID: box}
		c.Credentials.Username = "kes"
		c.Credentials.Password = keystore.NewSecret("p")
		return c
	}
	fortanixConf := func(key string) *fortanix.Config {
		c := &fortanix.Config{Endpoint: "https://sdkms"}
		c.Credentials.Key = keystore.NewSecret(key)
		return c
	}
	tests := []struct {
		name string
		conf interface{ Validate() error }
		want []string
	}{
		{"entrust empty", &entrust.Config{}, []string{
			required(e, "endpoint", "endpoint"),
			required(e, "vault_id", "vault ID"),
			required(e, "box_id", "box ID"),
			required(e, "credentials.username", "username"),
			required(e, "credentials.password", "password"),
		}},
		{"entrust no box", entrustConf(""), []string{required(e, "box_id", "box ID")}},
		{"entrust ok", entrustConf("b"), nil},
		{"fortanix empty", &fortanix.Config{}, []string{
			required(f, "endpoint", "endpoint"),
			required(f, "credentials.key", "API key"),
		}},
		{"fortanix no key", fortanixConf(""), []string{required(f, "credentials.key", "API key")}},
		{"fortanix ok", fortanixConf("k"), nil},
		{"gemalto empty", &gemalto.Config{}, []string{
			required(g, "endpoint", "endpoint"),
			required(g, "credentials.token", "token"),
		}},
		{"gemalto no token", &gemalto.Config{Endpoint: "https://keysecure"}, []string{required(g, "credentials.token", "token")}},
		{"gemalto ok", &gemalto.Config{Endpoint: "https://keysecure", Credentials: gemalto.Credentials{Token: keystore.NewSecret("t")}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			keystoretest.CheckValidate(t, tt.conf, tt.want)
		})
	}
}
