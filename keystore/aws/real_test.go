package aws

import (
	"errors"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/openkes/openkes/keystore"
	"github.com/openkes/openkes/keystore/keystoretest"
)

// TestRealService runs against the real AWS Secrets Manager when
// KES_TEST_AWS_REGION is set (see docs/keystores/aws.md):
//
//	KES_TEST_AWS_REGION      region, e.g. us-east-2 (required)
//	KES_TEST_AWS_ENDPOINT    endpoint; default secretsmanager.<region>.amazonaws.com
//	KES_TEST_AWS_KMSKEY      optional KMS key for the secrets
//	KES_TEST_AWS_ACCESS_KEY, KES_TEST_AWS_SECRET_KEY, KES_TEST_AWS_TOKEN
//	                         optional static credentials; default: the SDK's chain
//
// The conformance suite needs an empty store and immediate consistency,
// which an AWS account is not (ListSecrets may lag by minutes, and a
// force-deleted name can be recreated only after a short delay), so this
// test checks the contract on names of its own that no one else uses, and
// deletes them afterwards.
func TestRealService(t *testing.T) {
	region := keystoretest.RealEnv(t, "KES_TEST_AWS_REGION")[0]
	conf := &Config{
		Endpoint: os.Getenv("KES_TEST_AWS_ENDPOINT"),
		Region:   region,
		KMSKey:   os.Getenv("KES_TEST_AWS_KMSKEY"),
		Credentials: Credentials{
			AccessKey: os.Getenv("KES_TEST_AWS_ACCESS_KEY"),
			SecretKey: keystore.NewSecret(os.Getenv("KES_TEST_AWS_SECRET_KEY")),
			Token:     keystore.NewSecret(os.Getenv("KES_TEST_AWS_TOKEN")),
		},
	}
	if conf.Endpoint == "" {
		conf.Endpoint = "secretsmanager." + region + ".amazonaws.com"
	}
	s := open(t, conf, nil)
	ctx := t.Context()

	prefix, names := keystoretest.LiveNames(t, s, "openkes-test", "text", "binary")
	values := map[string][]byte{names[0]: []byte("CiQKIH4h7SlvgBKnShwinacNnDzvWORqyQ3cjw8TbSLrPGW9EAES"), names[1]: {0xff, 0x00, 0x01}}
	keystoretest.CheckCreateGet(t, s, names, func(name string) []byte { return values[name] })
	if _, err := s.Get(ctx, prefix+"missing"); !errors.Is(err, keystore.ErrNotFound) {
		t.Errorf("Get(missing) = %v, want %v", err, keystore.ErrNotFound)
	}

	// ListSecrets is eventually consistent.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		got, _, err := s.List(ctx, prefix, -1)
		if err != nil {
			t.Fatalf("List(%q) = %v", prefix, err)
		}
		want := slices.Sorted(slices.Values(names))
		if slices.Equal(got, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("List(%q) = %q, want %q", prefix, got, want)
		}
		time.Sleep(5 * time.Second)
	}

	for _, name := range names {
		if err := s.Delete(ctx, name); err != nil {
			t.Fatalf("Delete(%q) = %v", name, err)
		}
		if _, err := s.Get(ctx, name); !errors.Is(err, keystore.ErrNotFound) {
			t.Errorf("Get(%q) after Delete = %v, want %v", name, err, keystore.ErrNotFound)
		}
	}
	if err := s.Delete(ctx, prefix+"missing"); !errors.Is(err, keystore.ErrNotFound) {
		t.Errorf("Delete(missing) = %v, want %v", err, keystore.ErrNotFound)
	}
	t.Logf("checked %d secrets below %s", len(names), prefix)
}
