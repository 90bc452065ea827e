package keystore_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/openkes/openkes/keystore"
)

func TestSecretNeverPrints(t *testing.T) {
	const value = "s3cr3t-vault-secret-id"
	type conf struct {
		User     string          `yaml:"user"`
		Password keystore.Secret `yaml:"password"`
	}
	var c conf
	if err := yaml.Unmarshal([]byte("user: kes\npassword: "+value+"\n"), &c); err != nil {
		t.Fatal(err)
	}
	if got := c.Password.Reveal(); got != value {
		t.Fatalf("Reveal() = %q, want %q", got, value)
	}
	var logged strings.Builder
	slog.New(slog.NewTextHandler(&logged, nil)).Info("conf", "password", c.Password, "conf", c)
	outputs := map[string]string{
		"%v":   fmt.Sprintf("%v", c),
		"%+v":  fmt.Sprintf("%+v", c),
		"%#v":  fmt.Sprintf("%#v", c),
		"%s":   fmt.Sprintf("%s", c.Password),
		"%q":   fmt.Sprintf("%q", c.Password),
		"%x":   fmt.Sprintf("%x", c.Password),
		"slog": logged.String(),
	}
	for name, out := range outputs {
		if strings.Contains(out, value) || strings.Contains(out, fmt.Sprintf("%x", value)) {
			t.Errorf("%s printed the secret: %s", name, out)
		}
		if !strings.Contains(out, "[REDACTED]") {
			t.Errorf("%s = %s, want [REDACTED] in it", name, out)
		}
	}
	if b, err := json.Marshal(c); err == nil {
		t.Errorf("json.Marshal = %s, nil; want an error", b)
	}
	if b, err := yaml.Marshal(c); err == nil && strings.Contains(string(b), value) {
		t.Errorf("yaml.Marshal printed the secret: %s", b)
	}
	if c.Password.IsZero() || !(keystore.Secret{}).IsZero() {
		t.Error("IsZero is wrong")
	}
}
