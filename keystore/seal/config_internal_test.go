package seal

import (
	"testing"

	"gopkg.in/yaml.v3"
)

// TestDecodeKEKNotBuilt decodes a KEK subsection of a kind that is not
// registered, as in a binary built with its kes_omit_<name> tag.
func TestDecodeKEKNotBuilt(t *testing.T) {
	var n yaml.Node
	if err := yaml.Unmarshal([]byte("endpoint: x\n"), &n); err != nil {
		t.Fatal(err)
	}
	var conf KEKConfig
	err := decodeKEK("nokms", &conf, n.Content[0])
	if want := "not built into this binary (kes_omit_nokms)"; err == nil || err.Error() != want || conf != nil {
		t.Errorf("decodeKEK(nokms) = %v, config %v; want %q and none", err, conf, want)
	}
}
