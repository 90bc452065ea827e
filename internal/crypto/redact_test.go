package crypto

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"
)

// TestRedaction proves that fmt, log/slog and encoding/json never show key
// bytes, whatever the verb, handler or pointer-ness.
func TestRedaction(t *testing.T) {
	t.Parallel()
	keyBytes, hmacBytes := seq(0x61), seq(0x81) // 0x61.. is printable ASCII: %s would show "abcd..."
	key := newKey(t, ChaCha20, keyBytes)
	hmacKey, _ := NewHMACKey(hmacBytes)
	v := KeyVersion{Key: key, HMACKey: hmacKey, HasHMAC: true, CreatedAt: testTime, CreatedBy: "creator-id"}
	type wrapper struct {
		Version KeyVersion
		Ptr     *SecretKey
	}
	values := map[string]any{
		"SecretKey":   key,
		"*SecretKey":  &key,
		"HMACKey":     hmacKey,
		"*HMACKey":    &hmacKey,
		"KeyVersion":  v,
		"*KeyVersion": &v,
		"wrapper":     wrapper{Version: v, Ptr: &key},
		"*wrapper":    &wrapper{Version: v, Ptr: &key},
		"slice":       []SecretKey{key},
		"map":         map[string]KeyVersion{"k": v},
	}
	// %p is only tried on pointers: for a non-pointer fmt reports a bad verb
	// and prints the raw value without calling any method, which no method
	// can prevent (go vet flags it). For the same reason a SecretKey,
	// KeyVersion or a pointer to one in an unexported struct field is not
	// covered: fmt cannot call methods there (see the package doc).
	verbs := []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T"}
	for name, val := range values {
		t.Run("fmt/"+name, func(t *testing.T) {
			t.Parallel()
			verbs := verbs
			if reflect.ValueOf(val).Kind() == reflect.Pointer {
				verbs = append(verbs, "%p")
			}
			for _, verb := range verbs {
				s := fmt.Sprintf(verb, val)
				assertNoKeyBytes(t, s, keyBytes, hmacBytes)
				if strings.Contains(s, "abcdefgh") {
					t.Errorf("Sprintf(%q) = %q shows the key as text", verb, s)
				}
			}
			for _, s := range []string{fmt.Sprint(val), fmt.Sprintln(val)} {
				assertNoKeyBytes(t, s, keyBytes, hmacBytes)
			}
		})
		t.Run("slog/"+name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			for _, h := range []slog.Handler{
				slog.NewTextHandler(&buf, nil),
				slog.NewJSONHandler(&buf, nil),
			} {
				log := slog.New(h)
				log.Info("msg", "value", val)
				log.Info("msg", slog.Any("value", val), slog.Group("g", "value", val))
				log.With("value", val).Info("msg")
			}
			assertNoKeyBytes(t, buf.String(), keyBytes, hmacBytes)
			if strings.Contains(buf.String(), "abcdefgh") {
				t.Errorf("slog output shows the key as text:\n%s", buf.String())
			}
			// The text of MarshalText must not appear either.
			text, _ := v.MarshalText()
			if bytes.Contains(buf.Bytes(), text[:20]) {
				t.Errorf("slog output contains the encoded key version:\n%s", buf.String())
			}
		})
		t.Run("json/"+name, func(t *testing.T) {
			t.Parallel()
			b, err := json.Marshal(val)
			if err == nil {
				t.Errorf("json.Marshal() = %s, nil; want error", b)
			}
			assertNoKeyBytes(t, string(b)+fmt.Sprint(err), keyBytes, hmacBytes)
		})
	}

	// Exact outputs for the common cases.
	exact := []struct {
		name string
		got  string
		want string
	}{
		{"String", key.String(), "[REDACTED]"},
		{"GoString", key.GoString(), "[REDACTED]"},
		{"%v", fmt.Sprintf("%v", key), "[REDACTED]"},
		{"%x", fmt.Sprintf("%x", key), "[REDACTED]"},
		{"%#v-hmac", fmt.Sprintf("%#v", hmacKey), "[REDACTED]"},
		{"%+v-version", fmt.Sprintf("%+v", v), "{Key:[REDACTED] HMACKey:[REDACTED] HasHMAC:true CreatedAt:2024-01-12 10:39:20.886816 +0000 UTC CreatedBy:creator-id}"},
		{"LogValue", key.LogValue().String(), "[REDACTED]"},
		{"LogValue-hmac", hmacKey.LogValue().String(), "[REDACTED]"},
		{"LogValue-version", v.LogValue().String(), "[algorithm=ChaCha20 hmac=true created_at=2024-01-12 10:39:20.886816 +0000 UTC created_by=creator-id]"},
	}
	for _, tt := range exact {
		if tt.got != tt.want {
			t.Errorf("%s = %q, want %q", tt.name, tt.got, tt.want)
		}
	}
}
