package fortanix_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openkes/openkes/keystore"
	"github.com/openkes/openkes/keystore/fortanix"
	"github.com/openkes/openkes/keystore/fortanix/fortanixtest"
	"github.com/openkes/openkes/keystore/keystoretest"
)

const apiKey = "NjE4ZjQ1ZjQtYXBwOnNlY3JldC1hcGkta2V5LTAxMjM0NQ=="

func connect(t *testing.T, fake *fortanixtest.Server, group string, logs *keystoretest.LogBuffer) *fortanix.Store {
	t.Helper()
	conf := &fortanix.Config{Endpoint: fake.URL, GroupID: group}
	conf.Credentials.Key = keystore.NewSecret(apiKey)
	conf.TLS.CA = fake.CAFile(t)
	st, err := conf.Connect(t.Context(), keystoretest.Logger(logs))
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	return st.(*fortanix.Store)
}

func TestConformance(t *testing.T) {
	t.Parallel()
	// Pages of 3 objects make every listing of the suite span pages.
	keystoretest.Run(t, func(t *testing.T) keystore.Store {
		return connect(t, fortanixtest.New(t, fortanixtest.Options{APIKey: apiKey, PageSize: 3}), "", nil)
	})
}

// TestUpstreamLayout reads an object as the original server stores it
// and checks that new keys are stored the same way.
func TestUpstreamLayout(t *testing.T) {
	t.Parallel()
	fake := fortanixtest.New(t, fortanixtest.Options{APIKey: apiKey})
	value := []byte(`{"bytes":"dGVzdA==","algorithm":"AES256-GCM_SHA256"}`)
	fake.Put("upstream-key", "group-1", value)
	logs := &keystoretest.LogBuffer{}
	st := connect(t, fake, "group-1", logs)
	t.Cleanup(func() { st.Close() })
	ctx := t.Context()
	if got, err := st.Get(ctx, "upstream-key"); err != nil || !bytes.Equal(got, value) {
		t.Fatalf("Get = %q, %v; want %q", got, err, value)
	}
	if err := st.Create(ctx, "new-key", value); err != nil {
		t.Fatal(err)
	}
	o, ok := fake.Object("new-key")
	if !ok || o.ObjType != "OPAQUE" || o.GroupID != "group-1" || o.Value != base64.StdEncoding.EncodeToString(value) ||
		!o.Enabled || !slices.Equal(o.KeyOps, []string{"EXPORT", "APPMANAGEABLE"}) {
		t.Errorf("stored object = %+v, want the original's layout", o)
	}
	fake.SetEnabled("new-key", false)
	if _, err := st.Get(ctx, "new-key"); err == nil || errors.Is(err, keystore.ErrNotFound) {
		t.Errorf("Get of a disabled object = %v, want an error", err)
	}
	if got, want := st.String(), "Fortanix SDKMS: "+fake.URL; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	keystoretest.Eventually(t, 30*time.Second, func() error {
		if !strings.Contains(logs.String(), "API key accepted") {
			return errors.New("no log record of the API key check")
		}
		return nil
	})
	if strings.Contains(logs.String(), apiKey) {
		t.Errorf("the logs contain the API key:\n%s", logs)
	}
}

// TestListAdvances lists more names than one page holds: the listing
// ends and contains every name once (the original looped forever).
func TestListAdvances(t *testing.T) {
	t.Parallel()
	fake := fortanixtest.New(t, fortanixtest.Options{APIKey: apiKey, PageSize: 2})
	st := connect(t, fake, "", nil)
	t.Cleanup(func() { st.Close() })
	var want []string
	for i := range 7 {
		want = append(want, fmt.Sprintf("k-%d", i))
		fake.Put(want[i], "", []byte("v"))
	}
	fake.Put("a", "", []byte("v"))
	fake.Put("z", "", []byte("v"))
	before := fake.Lists()
	names, next, err := st.List(t.Context(), "k-", 0)
	if err != nil || next != "" || !slices.Equal(names, want) {
		t.Fatalf("List = %q, %q, %v; want %q", names, next, err, want)
	}
	// 7 matching names from "k-0" on, 2 a page, each page after the
	// first repeating its start: 7 pages at most.
	if n := fake.Lists() - before; n > 7 {
		t.Errorf("List took %d requests, want at most 7", n)
	}
}

// TestOutage starts the store while DSM is down, then throttles it.
func TestOutage(t *testing.T) {
	t.Parallel()
	fake := fortanixtest.New(t, fortanixtest.Options{APIKey: apiKey})
	texts := keystoretest.CheckOutage(t, fake, func(logs *keystoretest.LogBuffer) keystore.Store { return connect(t, fake, "", logs) })
	keystoretest.CheckNoSecrets(t, texts, apiKey)
}

// TestBadAPIKey: a wrong API key is not an outage, and is logged once.
func TestBadAPIKey(t *testing.T) {
	t.Parallel()
	fake := fortanixtest.New(t, fortanixtest.Options{APIKey: "another-key"})
	logs := &keystoretest.LogBuffer{}
	st := connect(t, fake, "", logs)
	t.Cleanup(func() { st.Close() })
	_, err := st.Get(t.Context(), "k")
	var re *fortanix.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusUnauthorized || keystore.IsUnreachable(err) {
		t.Fatalf("Get with a wrong API key = %v, want a 401 ResponseError", err)
	}
	if !strings.Contains(err.Error(), "Authentication required") {
		t.Errorf("Get error %q does not carry the service's message", err)
	}
	keystoretest.Eventually(t, 30*time.Second, func() error {
		if !strings.Contains(logs.String(), "API key check failed") {
			return errors.New("no log record of the failed API key check")
		}
		return nil
	})
	if strings.Contains(err.Error()+logs.String(), apiKey) {
		t.Errorf("the API key leaked")
	}
}

// TestRealService runs against a real Fortanix DSM when
// KES_TEST_FORTANIX_ENDPOINT and KES_TEST_FORTANIX_API_KEY are set
// (KES_TEST_FORTANIX_GROUP_ID and KES_TEST_FORTANIX_CA optional). It
// creates and deletes an object named kes-test-<n>.
func TestRealService(t *testing.T) {
	env := keystoretest.RealEnv(t, "KES_TEST_FORTANIX_ENDPOINT", "KES_TEST_FORTANIX_API_KEY")
	endpoint, key := env[0], env[1]
	conf := &fortanix.Config{Endpoint: endpoint, GroupID: os.Getenv("KES_TEST_FORTANIX_GROUP_ID")}
	conf.Credentials.Key = keystore.NewSecret(key)
	conf.TLS.CA = os.Getenv("KES_TEST_FORTANIX_CA")
	keystoretest.CheckLive(t, conf)
}
