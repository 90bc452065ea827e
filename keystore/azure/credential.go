package azure

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// envAuthorityHost is the variable azidentity reads for the identity
// provider of clouds other than Azure's public one.
const envAuthorityHost = "AZURE_AUTHORITY_HOST"

// publicAuthorities are the authority hosts of Azure's public and
// sovereign clouds, which Microsoft's instance discovery knows.
var publicAuthorities = map[string]bool{
	"login.microsoftonline.com": true,
	"login.chinacloudapi.cn":    true,
	"login.microsoftonline.us":  true,
}

// newCredential returns the token credential the configuration selects:
// a client secret, a user-assigned managed identity, or Azure's default
// credential chain (environment, workload identity, managed identity,
// Azure CLI, ...).
//
// The authority host is AZURE_AUTHORITY_HOST (or Azure's public cloud).
// For an authority that is not one of Azure's clouds (Azure Stack,
// a private or disconnected cloud) instance discovery is disabled:
// it would ask login.microsoftonline.com about a host it does not know.
func newCredential(c *Config, client azcore.ClientOptions) (azcore.TokenCredential, error) {
	authority := c.opts.authorityHost
	if authority == "" {
		authority = os.Getenv(envAuthorityHost)
	}
	disableDiscovery := false
	if authority != "" {
		u, err := url.Parse(authority)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return nil, fmt.Errorf("azure: %s: not an https URL: '%s'", envAuthorityHost, authority)
		}
		client.Cloud = cloud.Configuration{ActiveDirectoryAuthorityHost: authority}
		disableDiscovery = !publicAuthorities[strings.ToLower(u.Hostname())]
	}
	switch {
	case c.usesCredentials():
		return azidentity.NewClientSecretCredential(c.Credentials.TenantID, c.Credentials.ClientID, c.Credentials.ClientSecret.Reveal(),
			&azidentity.ClientSecretCredentialOptions{ClientOptions: client, DisableInstanceDiscovery: disableDiscovery})
	case c.usesManagedIdentity():
		return azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{
			ClientOptions: client, ID: azidentity.ClientID(c.ManagedIdentity.ClientID),
		})
	default:
		return azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{
			ClientOptions: client, DisableInstanceDiscovery: disableDiscovery,
		})
	}
}

// loginError is a failed token request, summarised on one line.
type loginError struct {
	status int // the identity provider's HTTP status; 0 if none
	err    error
}

func (e *loginError) Error() string {
	var af *azidentity.AuthenticationFailedError
	if errors.As(e.err, &af) && af.RawResponse != nil {
		msg := fmt.Sprintf("azure: login failed: %d", af.RawResponse.StatusCode)
		if body, err := runtime.Payload(af.RawResponse); err == nil {
			var v struct {
				Error       string `json:"error"`
				Description string `json:"error_description"`
			}
			if json.Unmarshal(body, &v) == nil && v.Error != "" {
				desc, _, _ := strings.Cut(v.Description, "\n")
				desc, _, _ = strings.Cut(desc, "\r")
				msg += " " + v.Error + ": " + truncate(desc, 200)
			}
		}
		return msg
	}
	first, _, _ := strings.Cut(e.err.Error(), "\n")
	return "azure: login failed: " + truncate(strings.TrimSpace(first), 300)
}

func (e *loginError) Unwrap() error { return e.err }

// backoffCredential wraps a credential so that, after a failed login, the
// next attempt waits for an exponentially growing, jittered delay (up to
// max): meanwhile token requests fail at once with the last error instead
// of hammering the identity provider. Successful tokens are cached and
// refreshed before they expire by the SDK (azidentity's token cache and
// azcore's bearer token policy); this wrapper only sees the requests for
// new ones.
type backoffCredential struct {
	cred azcore.TokenCredential
	log  *slog.Logger
	max  time.Duration

	mu       sync.Mutex
	failures int
	retryAt  time.Time
	last     error
}

func (b *backoffCredential) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	b.mu.Lock()
	if b.failures > 0 && time.Now().Before(b.retryAt) {
		err := b.last
		b.mu.Unlock()
		return azcore.AccessToken{}, err
	}
	b.mu.Unlock()

	tok, err := b.cred.GetToken(ctx, opts)

	b.mu.Lock()
	defer b.mu.Unlock()
	if err == nil {
		if b.failures > 0 {
			b.log.Info("azure: login succeeded again", "failures", b.failures)
		}
		b.failures, b.last = 0, nil
		return tok, nil
	}
	if ctx.Err() != nil {
		return tok, err // the caller gave up; not the provider's fault
	}
	b.failures++
	delay := min(b.max, 250*time.Millisecond<<min(b.failures-1, 10))
	delay = delay/2 + rand.N(delay/2+1)
	b.retryAt = time.Now().Add(delay)
	le := &loginError{err: err}
	var af *azidentity.AuthenticationFailedError
	if errors.As(err, &af) && af.RawResponse != nil {
		le.status = af.RawResponse.StatusCode
	}
	b.last = le
	b.log.Warn("azure: login failed", "error", le.Error(), "failures", b.failures, "retry_in", delay.Round(time.Millisecond))
	return tok, le
}
