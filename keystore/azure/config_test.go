package azure_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/openkes/openkes/config"
	"github.com/openkes/openkes/keystore"
	_ "github.com/openkes/openkes/keystore/all"
	"github.com/openkes/openkes/keystore/azure"
	"github.com/openkes/openkes/keystore/keystoretest"
)

// TestParse decodes keystore sections written for the original server.
func TestParse(t *testing.T) {
	t.Parallel()
	// env resolves the ${SECRET} of the sections.
	env := func(name string) (string, bool) {
		if name == "SECRET" {
			return "s3cr3t", true
		}
		return "", false
	}
	tests := []struct {
		name    string
		section string
		want    azure.Config
		wantErr []string
	}{
		{
			name:    "credentials",
			section: "endpoint: https://kes.vault.azure.net\ncredentials:\n  tenant_id: t\n  client_id: c\n  client_secret: ${SECRET}\n",
			want: azure.Config{Endpoint: "https://kes.vault.azure.net", Credentials: azure.Credentials{
				TenantID: "t", ClientID: "c", ClientSecret: keystore.NewSecret("s3cr3t"),
			}},
		},
		{
			name:    "managed-identity",
			section: "endpoint: https://kes.vault.azure.net\nmanaged_identity:\n  client_id: mi\n",
			want:    azure.Config{Endpoint: "https://kes.vault.azure.net", ManagedIdentity: azure.ManagedIdentity{ClientID: "mi"}},
		},
		{
			name: "sample-config-empty-sections", // the original's sample lists both, empty: default chain
			section: "endpoint: https://kes.vault.azure.net\ncredentials:\n  tenant_id: \"\"\n  client_id: \"\"\n  client_secret: \"\"\n" +
				"managed_identity:\n  client_id: \"\"\n",
			want: azure.Config{Endpoint: "https://kes.vault.azure.net"},
		},
		{
			name:    "no-endpoint",
			section: "credentials:\n  tenant_id: t\n",
			wantErr: []string{
				"keystore.azure.keyvault.endpoint: required (kesconf: invalid Azure keyvault keystore: no endpoint specified)",
				"keystore.azure.keyvault.credentials.client_id: required (kesconf: invalid Azure keyvault keystore: no client ID specified)",
				"keystore.azure.keyvault.credentials.client_secret: required (kesconf: invalid Azure keyvault keystore: no client secret specified)",
			},
		},
		{
			name:    "no-tenant",
			section: "endpoint: https://kes.vault.azure.net\ncredentials:\n  client_id: c\n  client_secret: s\n",
			wantErr: []string{
				"keystore.azure.keyvault.credentials.tenant_id: required (kesconf: invalid Azure keyvault keystore: no tenant ID specified)",
			},
		},
		{
			name:    "both-methods",
			section: "endpoint: https://kes.vault.azure.net\ncredentials:\n  tenant_id: t\n  client_id: c\n  client_secret: s\nmanaged_identity:\n  client_id: mi\n",
			wantErr: []string{
				"keystore.azure.keyvault: credentials and managed_identity are mutually exclusive (kesconf: invalid Azure keyvault keystore: more than one authentication method specified)",
			},
		},
		{
			name:    "bad-endpoint",
			section: "endpoint: kes.vault.azure.net\n",
			wantErr: []string{"keystore.azure.keyvault.endpoint: not an https URL: 'kes.vault.azure.net'"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			indented := "      " + strings.ReplaceAll(strings.TrimSuffix(tt.section, "\n"), "\n", "\n      ") + "\n"
			kind, conf, _, err := config.ParseKeyStore([]byte("keystore:\n  azure:\n    keyvault:\n"+indented), env)
			if keystoretest.CheckErrLines(t, "ParseKeyStore()", err, tt.wantErr, true) {
				return
			}
			if kind != azure.Kind {
				t.Errorf("kind = %q, want %q", kind, azure.Kind)
			}
			got := conf.(*azure.Config)
			if got.Endpoint != tt.want.Endpoint || got.Credentials.TenantID != tt.want.Credentials.TenantID ||
				got.Credentials.ClientID != tt.want.Credentials.ClientID ||
				got.Credentials.ClientSecret.Reveal() != tt.want.Credentials.ClientSecret.Reveal() ||
				got.ManagedIdentity != tt.want.ManagedIdentity {
				t.Errorf("ParseKeyStore() = %+v, want %+v", got, &tt.want)
			}
			if s := fmt.Sprintf("%v %+v %#v", got, got, got); strings.Contains(s, "s3cr3t") {
				t.Errorf("printing the config shows the client secret: %s", s)
			}
		})
	}
}

// TestDeps checks that the Azure SDK is imported by keystore/azure only
// and that building with kes_omit_azure leaves it out of kes.
func TestDeps(t *testing.T) {
	t.Parallel()
	list := func(args ...string) []string {
		t.Helper()
		return keystoretest.GoList(t, filepath.Join("..", ".."), args...)
	}
	const sdk = "github.com/Azure/"
	hasSDK := func(pkgs []string) bool {
		return slices.ContainsFunc(pkgs, func(p string) bool { return strings.HasPrefix(p, sdk) })
	}
	if !hasSDK(list("-deps", "./cmd/kes")) {
		t.Errorf("kes does not depend on the Azure SDK; is keystore/all/azure.go there?")
	}
	if hasSDK(list("-deps", "-tags", "kes_omit_azure", "./cmd/kes")) {
		t.Errorf("kes built with kes_omit_azure still depends on the Azure SDK")
	}
	for _, line := range list("-f", `{{.ImportPath}} {{join .Imports " "}}`, "./...") {
		pkg, imports, _ := strings.Cut(line, " ")
		if strings.Contains(" "+imports, " "+sdk) && pkg != "github.com/openkes/openkes/keystore/azure" {
			t.Errorf("%s imports the Azure SDK; only keystore/azure may", pkg)
		}
	}
}
