package vault

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/openkes/openkes/keystore"
	"github.com/openkes/openkes/keystore/keystoretest"
	"github.com/openkes/openkes/keystore/vault/vaulttest"
)

// TestNoSecretsInLogs drives stores through logins, renewals, failed
// renewals, failed logins, revoked tokens, wrong credentials and a seal,
// with logging at DEBUG level, and checks that no token, secret ID or
// JWT appears in the log, in a returned error, or in the printed
// configuration.
func TestNoSecretsInLogs(t *testing.T) {
	t.Parallel()
	const wrongSecret = "wrong-secret-id-never-logged"
	log, logs := newCapture()
	srv := newFake(t, vaulttest.TokenOptions{TTL: 2 * time.Second})
	f := srv.fake
	f.AddKubernetesRole("", "kubernetes", vaulttest.KubernetesRole{Name: "kes", JWT: testJWT, Token: vaulttest.TokenOptions{TTL: 2 * time.Second}})

	var errs []error
	note := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}

	conf, _ := srv.config(t, storeConfig{version: "v2", prefix: true, transit: true})
	s := open(t, conf, log)
	note(s.Create(t.Context(), "k", []byte("value")))

	// Renewals.
	_, failed := hammer(t, s, 1800*time.Millisecond, nil)
	errs = append(errs, failed...)
	// Failed renewals, then a new login.
	_, failed = hammer(t, s, 2500*time.Millisecond, func() { f.FailRenewals(1 << 30) })
	errs = append(errs, failed...)
	f.FailRenewals(0)
	// Failed logins after a revocation.
	f.FailLogins(3)
	f.RevokeAll()
	for range 20 {
		_, err := s.Get(t.Context(), "k")
		note(err)
		time.Sleep(20 * time.Millisecond)
	}
	// A seal.
	f.Seal()
	_, err := s.Get(t.Context(), "k")
	note(err)
	f.Unseal()
	keystoretest.WaitUntil(t, "the store to work after unsealing", func() bool {
		_, err := s.Get(t.Context(), "k")
		return err == nil
	})

	// Wrong credentials.
	bad := *conf
	bad.AppRole.Secret = keystore.NewSecret(wrongSecret)
	sb := open(t, &bad, log)
	_, err = sb.Get(t.Context(), "k")
	note(err)
	_, err = sb.Status(t.Context())
	note(err)

	// Kubernetes, right and wrong.
	k8s := *conf
	k8s.AppRole = AppRoleConfig{}
	k8s.Kubernetes = KubernetesConfig{Role: "kes", JWT: keystore.NewSecret(testJWT)}
	sk := open(t, &k8s, log)
	_, err = sk.Get(t.Context(), "k")
	note(err)
	f.AddKubernetesRole("", "kubernetes", vaulttest.KubernetesRole{Name: "kes", JWT: "another-jwt", Token: vaulttest.TokenOptions{TTL: 2 * time.Second}})
	f.RevokeAll()
	_, err = sk.Get(t.Context(), "k")
	note(err)

	if len(errs) == 0 {
		t.Fatal("no errors were provoked")
	}
	out := logs()
	for _, want := range []string{"vault: logged in", "vault: token renewed", "vault: token renewal failed", "vault: login failed", "vault: key store is sealed", "vault: token rejected"} {
		if !strings.Contains(out, want) {
			t.Errorf("the log has no %q:\n%s", want, out)
		}
	}
	secrets := append(f.Tokens(), testSecretID, wrongSecret, testJWT, "another-jwt")
	printed := fmt.Sprintf("%v %+v %#v %v %+v %#v", conf, conf, conf, &k8s, &k8s, &k8s)
	for _, secret := range secrets {
		if strings.Contains(out, secret) {
			t.Errorf("the log contains the secret %q", secret)
		}
		if strings.Contains(printed, secret) {
			t.Errorf("the printed config contains the secret %q", secret)
		}
		for _, err := range errs {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q contains the secret %q", err, secret)
			}
		}
	}
	if len(f.Tokens()) < 3 {
		t.Errorf("only %d tokens were issued", len(f.Tokens()))
	}
}
