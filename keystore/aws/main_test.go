package aws

import (
	"os"
	"testing"
)

// TestMain keeps AWS settings of the machine's environment away from the
// tests against the fake, which would otherwise fail for reasons of the
// machine (an AWS_CA_BUNDLE that does not exist, an AWS_PROFILE that is
// not in the credentials file, a different retry mode). Tests of the
// credential chain set their own variables. With KES_TEST_AWS_REGION set
// (TestRealService) the environment is left as it is: it may hold the
// credentials to use.
func TestMain(m *testing.M) {
	if os.Getenv("KES_TEST_AWS_REGION") == "" {
		for _, k := range []string{"AWS_CA_BUNDLE", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE",
			"AWS_USE_FIPS_ENDPOINT", "AWS_USE_DUALSTACK_ENDPOINT", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SECRETS_MANAGER"} {
			os.Unsetenv(k)
		}
	}
	os.Exit(m.Run())
}
