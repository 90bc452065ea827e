package gcp

import (
	"errors"
	"os"
	"slices"
	"testing"

	"github.com/openkes/openkes/keystore"
	"github.com/openkes/openkes/keystore/keystoretest"
)

// TestRealService runs against GCP Secret Manager when
// KES_TEST_GCP_PROJECT_ID names a project. Credentials are Application
// Default Credentials (GOOGLE_APPLICATION_CREDENTIALS or gcloud's), or the
// service account key file named by KES_TEST_GCP_CREDENTIALS_FILE; the
// account needs roles/secretmanager.admin on the project.
// KES_TEST_GCP_ENDPOINT optionally overrides the endpoint. The test
// creates and deletes secrets named openkes-test-<random>-*; it leaves
// the project's other secrets alone, so the conformance suite, which
// needs an empty store, is not run.
func TestRealService(t *testing.T) {
	project := keystoretest.RealEnv(t, "KES_TEST_GCP_PROJECT_ID")[0]
	conf := &Config{ProjectID: project, Endpoint: os.Getenv("KES_TEST_GCP_ENDPOINT")}
	if f := os.Getenv("KES_TEST_GCP_CREDENTIALS_FILE"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		conf.CredentialsJSON = keystore.NewSecret(string(b))
	}
	s, err := New(t.Context(), conf, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustClose(t, s)
	ctx := t.Context()
	prefix, names := keystoretest.LiveNames(t, s, "openkes-test", "a", "b", "race")
	keystoretest.CheckCreateGet(t, s, names[:2], func(n string) []byte { return []byte("value-" + n) })
	if got, _, err := s.List(ctx, prefix, 0); err != nil || !slices.Equal(got, names[:2]) {
		t.Errorf("List(%q) = %q, %v; want %q", prefix, got, err, names[:2])
	}

	if keystoretest.RaceCreate(t, "concurrent Creates", 8, func(int) error { return s.Create(ctx, names[2], []byte("race")) }) < 0 {
		t.Errorf("no concurrent Create succeeded, want 1")
	}

	for _, n := range names {
		if err := s.Delete(ctx, n); err != nil {
			t.Errorf("Delete(%q) = %v", n, err)
		}
		if _, err := s.Get(ctx, n); !errors.Is(err, keystore.ErrNotFound) {
			t.Errorf("Get(%q) after Delete = %v, want ErrNotFound", n, err)
		}
	}
	if err := s.Delete(ctx, names[0]); !errors.Is(err, keystore.ErrNotFound) {
		t.Errorf("Delete of a missing key = %v, want ErrNotFound", err)
	}
}
