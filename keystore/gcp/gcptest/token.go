package gcptest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// jwtBearer is the grant type of RFC 7523, which Google's token endpoint
// uses for service accounts.
const jwtBearer = "urn:ietf:params:oauth:grant-type:jwt-bearer"

// TokenServer is a fake of Google's OAuth 2.0 token endpoint for service
// accounts. It is safe for concurrent use.
type TokenServer struct {
	// URL is the token endpoint, the token_uri of the service accounts'
	// key files.
	URL string

	lifetime time.Duration
	srv      *httptest.Server
	aud      []string // accepted audiences besides URL

	mu       sync.Mutex
	accounts map[string]*ServiceAccount // by client_email
	tokens   map[string]time.Time       // access token -> expiry
	requests int
	issued   int
	refused  int
	down     bool
}

// ServiceAccount is a service account known to a TokenServer.
type ServiceAccount struct {
	ClientEmail  string
	ClientID     string
	PrivateKeyID string
	// PrivateKeyPEM is the PKCS #8 PEM private key.
	PrivateKeyPEM string

	key *rsa.PublicKey
	ts  *TokenServer
}

// NewTokenServer starts a token endpoint that issues access tokens valid
// for lifetime (rounded down to whole seconds, at least one), which is
// also the expires_in it tells the client. It is stopped when the test
// ends.
func NewTokenServer(t testing.TB, lifetime time.Duration) *TokenServer {
	t.Helper()
	ts := &TokenServer{
		lifetime: max(lifetime.Truncate(time.Second), time.Second),
		accounts: map[string]*ServiceAccount{},
		tokens:   map[string]time.Time{},
	}
	ts.srv = httptest.NewServer(ts)
	ts.URL = ts.srv.URL + "/token"
	t.Cleanup(ts.srv.Close)
	return ts
}

// NewServiceAccount creates a service account with a fresh RSA key.
func (ts *TokenServer) NewServiceAccount(t testing.TB, name string) *ServiceAccount {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	var id [20]byte
	rand.Read(id[:])
	sa := &ServiceAccount{
		ClientEmail:   name + "@openkes-test.iam.gserviceaccount.com",
		ClientID:      "10000000000000000" + hex.EncodeToString(id[:2]),
		PrivateKeyID:  hex.EncodeToString(id[:]),
		PrivateKeyPEM: string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		key:           &key.PublicKey,
		ts:            ts,
	}
	ts.mu.Lock()
	ts.accounts[sa.ClientEmail] = sa
	ts.mu.Unlock()
	return sa
}

// KeyFile returns the service account's JSON key file, as the Cloud
// console would download it, but with the fake's token_uri.
func (sa *ServiceAccount) KeyFile() []byte {
	b, _ := json.Marshal(map[string]string{
		"type":           "service_account",
		"project_id":     "openkes-test",
		"private_key_id": sa.PrivateKeyID,
		"private_key":    sa.PrivateKeyPEM,
		"client_email":   sa.ClientEmail,
		"client_id":      sa.ClientID,
		"auth_uri":       "https://accounts.google.com/o/oauth2/auth",
		"token_uri":      sa.ts.URL,
	})
	return b
}

// SetDown makes the endpoint answer 503 (true) or work again (false).
func (ts *TokenServer) SetDown(down bool) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.down = down
}

// Requests returns how many requests the endpoint has received,
// including those it answered with an error.
func (ts *TokenServer) Requests() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.requests
}

// Issued returns how many access tokens the endpoint has issued.
func (ts *TokenServer) Issued() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.issued
}

// Refused returns how many token requests the endpoint refused.
func (ts *TokenServer) Refused() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.refused
}

// Tokens returns every access token issued so far, for checking that
// none shows up where it must not.
func (ts *TokenServer) Tokens() []string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	out := make([]string, 0, len(ts.tokens))
	for tok := range ts.tokens {
		out = append(out, tok)
	}
	return out
}

// valid reports whether tok was issued and has not expired.
func (ts *TokenServer) valid(tok string) bool {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	exp, ok := ts.tokens[tok]
	return ok && time.Now().Before(exp)
}

// tokenError writes an OAuth 2.0 error response (RFC 6749, 5.2).
func tokenError(w http.ResponseWriter, code int, errCode, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": errCode, "error_description": desc})
}

// AcceptAudience makes the endpoint also accept assertions for the token
// URL aud, for serving it under another name (such as Google's
// https://oauth2.googleapis.com/token, through a proxy).
func (ts *TokenServer) AcceptAudience(aud string) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.aud = append(ts.aud, aud)
}

// ServeHTTP answers token requests (POST /token).
func (ts *TokenServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ts.mu.Lock()
	ts.requests++
	down := ts.down
	ts.mu.Unlock()
	if down {
		http.Error(w, "service unavailable", http.StatusServiceUnavailable)
		return
	}
	refuse := func(code int, errCode, desc string) {
		ts.mu.Lock()
		ts.refused++
		ts.mu.Unlock()
		tokenError(w, code, errCode, desc)
	}
	if r.Method != http.MethodPost || r.URL.Path != "/token" {
		refuse(http.StatusNotFound, "invalid_request", "not found")
		return
	}
	if err := r.ParseForm(); err != nil {
		refuse(http.StatusBadRequest, "invalid_request", "malformed form")
		return
	}
	if r.PostForm.Get("grant_type") != jwtBearer {
		refuse(http.StatusBadRequest, "unsupported_grant_type", "Invalid grant_type.")
		return
	}
	_, _, err := ts.verify(r.PostForm.Get("assertion"))
	if err != "" {
		refuse(http.StatusBadRequest, "invalid_grant", err)
		return
	}
	var raw [24]byte
	rand.Read(raw[:])
	tok := "ya29.fake-" + base64.RawURLEncoding.EncodeToString(raw[:])
	ts.mu.Lock()
	ts.tokens[tok] = time.Now().Add(ts.lifetime)
	ts.issued++
	ts.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"access_token": tok,
		"expires_in":   int(ts.lifetime / time.Second),
		"token_type":   "Bearer",
	})
}

// verify checks a JWT assertion: RS256, signed by a known service
// account's key (kid = private_key_id), issued by it, for this endpoint,
// with a scope, not expired. It returns the problem as an OAuth error
// description.
func (ts *TokenServer) verify(assertion string) (*ServiceAccount, time.Time, string) {
	parts := strings.Split(assertion, ".")
	if len(parts) != 3 {
		return nil, time.Time{}, "Invalid JWT: not three segments."
	}
	var header struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	var claims struct {
		Iss   string `json:"iss"`
		Aud   string `json:"aud"`
		Scope string `json:"scope"`
		Iat   int64  `json:"iat"`
		Exp   int64  `json:"exp"`
	}
	if !decodeSegment(parts[0], &header) || !decodeSegment(parts[1], &claims) {
		return nil, time.Time{}, "Invalid JWT: malformed segment."
	}
	if header.Alg != "RS256" {
		return nil, time.Time{}, "Invalid JWT: alg must be RS256."
	}
	ts.mu.Lock()
	sa := ts.accounts[claims.Iss]
	audOK := claims.Aud == ts.URL || slices.Contains(ts.aud, claims.Aud)
	ts.mu.Unlock()
	if sa == nil {
		return nil, time.Time{}, "Invalid JWT: unknown issuer."
	}
	if header.Kid != "" && header.Kid != sa.PrivateKeyID {
		return nil, time.Time{}, "Invalid JWT Signature."
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return nil, time.Time{}, "Invalid JWT Signature."
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if rsa.VerifyPKCS1v15(sa.key, crypto.SHA256, sum[:], sig) != nil {
		return nil, time.Time{}, "Invalid JWT Signature."
	}
	now := time.Now().Unix()
	switch {
	case !audOK:
		return nil, time.Time{}, "Invalid JWT: aud must be the token endpoint."
	case claims.Scope == "":
		return nil, time.Time{}, "Invalid JWT: no scope."
	case claims.Exp < now || claims.Iat > now+300 || claims.Exp-claims.Iat > 3600:
		return nil, time.Time{}, "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe."
	}
	return sa, time.Unix(claims.Exp, 0), ""
}

func decodeSegment(seg string, v any) bool {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	return err == nil && json.Unmarshal(b, v) == nil
}
