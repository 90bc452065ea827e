package awstest

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// request is an API request to be signed with the SDK's own SigV4 signer,
// an implementation independent of the fake's verifier.
type request struct {
	body      string
	target    string
	region    string
	service   string
	creds     aws.Credentials
	at        time.Time
	tamper    func(r *http.Request) // after signing
	noAuth    bool
	extraHead map[string]string // set before signing
}

func (s *Server) send(t *testing.T, rq request) (int, string) {
	t.Helper()
	if rq.target == "" {
		rq.target = "secretsmanager.GetSecretValue"
	}
	if rq.body == "" {
		rq.body = `{"SecretId":"missing"}`
	}
	if rq.region == "" {
		rq.region = s.Region()
	}
	if rq.service == "" {
		rq.service = "secretsmanager"
	}
	if rq.creds.AccessKeyID == "" {
		rq.creds = aws.Credentials{AccessKeyID: AccessKeyID, SecretAccessKey: SecretAccessKey}
	}
	if rq.at.IsZero() {
		rq.at = time.Now()
	}
	r, err := http.NewRequest(http.MethodPost, s.URL+"/", strings.NewReader(rq.body))
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Content-Type", "application/x-amz-json-1.1")
	r.Header.Set("X-Amz-Target", rq.target)
	for k, v := range rq.extraHead {
		r.Header.Set(k, v)
	}
	if !rq.noAuth {
		err := v4.NewSigner().SignHTTP(context.Background(), rq.creds, r, hexSHA256([]byte(rq.body)), rq.service, rq.region, rq.at)
		if err != nil {
			t.Fatal(err)
		}
	}
	if rq.tamper != nil {
		rq.tamper(r)
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var e struct {
		Type string `json:"__type"`
	}
	json.Unmarshal(data, &e)
	return resp.StatusCode, e.Type
}

// TestSignatureVerification checks the fake's SigV4 verification against
// requests signed by the SDK's signer: a correctly signed request passes
// (and reaches the operation), every change to a signed part fails.
func TestSignatureVerification(t *testing.T) {
	t.Parallel()
	fake := New(t, Options{Region: "eu-west-1"})
	fake.PutString("present", "v")
	tests := []struct {
		name     string
		rq       request
		wantCode string
	}{
		{name: "valid", rq: request{}, wantCode: "ResourceNotFoundException"},
		{name: "valid-existing", rq: request{body: `{"SecretId":"present"}`}, wantCode: ""},
		{name: "wrong-secret", rq: request{creds: aws.Credentials{AccessKeyID: AccessKeyID, SecretAccessKey: "wrong"}}, wantCode: "InvalidSignatureException"},
		{name: "unknown-key", rq: request{creds: aws.Credentials{AccessKeyID: "AKIAOTHER", SecretAccessKey: SecretAccessKey}}, wantCode: "UnrecognizedClientException"},
		{name: "body-changed", rq: request{tamper: func(r *http.Request) {
			r.Body = io.NopCloser(strings.NewReader(`{"SecretId":"missinG"}`))
		}}, wantCode: "InvalidSignatureException"},
		{name: "target-changed", rq: request{tamper: func(r *http.Request) {
			r.Header.Set("X-Amz-Target", "secretsmanager.DeleteSecret")
		}}, wantCode: "InvalidSignatureException"},
		{name: "date-changed", rq: request{tamper: func(r *http.Request) {
			d, _ := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
			r.Header.Set("X-Amz-Date", d.Add(time.Second).Format("20060102T150405Z"))
		}}, wantCode: "InvalidSignatureException"},
		{name: "signature-flipped", rq: request{tamper: func(r *http.Request) {
			h := r.Header.Get("Authorization")
			i := strings.LastIndex(h, "=") + 1
			c := "0"
			if h[i] == '0' {
				c = "1"
			}
			r.Header.Set("Authorization", h[:i]+c+h[i+1:])
		}}, wantCode: "InvalidSignatureException"},
		{name: "too-old", rq: request{at: time.Now().Add(-10 * time.Minute)}, wantCode: "InvalidSignatureException"},
		{name: "wrong-region", rq: request{region: "us-east-1"}, wantCode: "InvalidSignatureException"},
		{name: "wrong-service", rq: request{service: "kms"}, wantCode: "InvalidSignatureException"},
		{name: "unsigned-token", rq: request{tamper: func(r *http.Request) {
			r.Header.Set("X-Amz-Security-Token", "token")
		}}, wantCode: "IncompleteSignatureException"},
		{name: "no-auth", rq: request{noAuth: true}, wantCode: "MissingAuthenticationTokenException"},
		{name: "garbage-auth", rq: request{noAuth: true, tamper: func(r *http.Request) {
			r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=x")
		}}, wantCode: "IncompleteSignatureException"},
		{name: "header-spaces-canonicalised", rq: request{extraHead: map[string]string{"X-Amz-Meta": "a   b  c "}}, wantCode: "ResourceNotFoundException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			status, code := fake.send(t, tt.rq)
			if code != tt.wantCode {
				t.Errorf("error code = %q (status %d), want %q", code, status, tt.wantCode)
			}
			if tt.wantCode == "" && status != http.StatusOK {
				t.Errorf("status = %d, want 200", status)
			}
		})
	}
}

// TestTemporaryCredentials checks the session credentials of the
// credentials endpoint: the token must be sent and they expire.
func TestTemporaryCredentials(t *testing.T) {
	t.Parallel()
	fake := New(t, Options{})
	resp, err := http.Get(fake.CredentialsURL())
	if err != nil {
		t.Fatal(err)
	}
	var c struct{ AccessKeyId, SecretAccessKey, Token, Expiration string }
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if _, err := time.Parse(time.RFC3339, c.Expiration); err != nil {
		t.Errorf("Expiration %q: %v", c.Expiration, err)
	}
	creds := aws.Credentials{AccessKeyID: c.AccessKeyId, SecretAccessKey: c.SecretAccessKey, SessionToken: c.Token}
	if _, code := fake.send(t, request{creds: creds}); code != "ResourceNotFoundException" {
		t.Errorf("with session credentials: code %q, want ResourceNotFoundException", code)
	}
	noToken := creds
	noToken.SessionToken = ""
	if _, code := fake.send(t, request{creds: noToken}); code != "UnrecognizedClientException" {
		t.Errorf("without the session token: code %q, want UnrecognizedClientException", code)
	}
	fake.ExpireCredentials()
	if _, code := fake.send(t, request{creds: creds}); code != "ExpiredTokenException" {
		t.Errorf("after expiry: code %q, want ExpiredTokenException", code)
	}
	if got := fake.Rejected("ExpiredTokenException"); got != 1 {
		t.Errorf("Rejected(ExpiredTokenException) = %d, want 1", got)
	}
}

// TestOperations drives the operations with raw requests and checks the
// documented answers, including the ones keystore/aws does not provoke.
func TestOperations(t *testing.T) {
	t.Parallel()
	fake := New(t, Options{PageSize: 2})
	keyARN := fake.AddKMSKey("k1", "kes")
	token := strings.Repeat("a", 32)
	tests := []struct {
		name, target, body, wantCode string
	}{
		{"create", "CreateSecret", `{"Name":"a","SecretString":"v1","ClientRequestToken":"` + token + `"}`, ""},
		{"create-retried", "CreateSecret", `{"Name":"a","SecretString":"v1","ClientRequestToken":"` + token + `"}`, ""},
		{"create-exists", "CreateSecret", `{"Name":"a","SecretString":"v2"}`, "ResourceExistsException"},
		{"create-both-values", "CreateSecret", `{"Name":"b","SecretString":"v","SecretBinary":"AA=="}`, "InvalidParameterException"},
		{"create-bad-name", "CreateSecret", `{"Name":"a b","SecretString":"v"}`, "InvalidParameterException"},
		{"create-unknown-field", "CreateSecret", `{"Name":"b","Secret":"v"}`, "SerializationException"},
		{"create-kms-arn", "CreateSecret", `{"Name":"k","SecretString":"v","KmsKeyId":"` + keyARN + `"}`, ""},
		{"create-kms-unknown", "CreateSecret", `{"Name":"u","SecretString":"v","KmsKeyId":"alias/none"}`, "EncryptionFailure"},
		{"create-c", "CreateSecret", `{"Name":"c","SecretBinary":"AAE="}`, ""},
		{"get", "GetSecretValue", `{"SecretId":"a"}`, ""},
		{"get-version-missing", "GetSecretValue", `{"SecretId":"a","VersionStage":"AWSPREVIOUS"}`, "ResourceNotFoundException"},
		{"delete-both", "DeleteSecret", `{"SecretId":"a","ForceDeleteWithoutRecovery":true,"RecoveryWindowInDays":7}`, "InvalidParameterException"},
		{"delete-scheduled", "DeleteSecret", `{"SecretId":"c","RecoveryWindowInDays":7}`, ""},
		{"get-scheduled", "GetSecretValue", `{"SecretId":"c"}`, "InvalidRequestException"},
		{"create-scheduled", "CreateSecret", `{"Name":"c","SecretString":"v"}`, "InvalidRequestException"},
		{"delete-force", "DeleteSecret", `{"SecretId":"a","ForceDeleteWithoutRecovery":true}`, ""},
		{"delete-missing", "DeleteSecret", `{"SecretId":"a","ForceDeleteWithoutRecovery":true}`, "ResourceNotFoundException"},
		{"list-bad-max", "ListSecrets", `{"MaxResults":101}`, "InvalidParameterException"},
		{"list-bad-token", "ListSecrets", `{"NextToken":"xyz"}`, "InvalidNextTokenException"},
		{"unknown-op", "RotateSecret", `{}`, "UnknownOperationException"},
	}
	for _, tt := range tests { // in order: later steps depend on earlier ones
		_, code := fake.send(t, request{target: "secretsmanager." + tt.target, body: tt.body})
		if code != tt.wantCode {
			t.Errorf("%s: error code %q, want %q", tt.name, code, tt.wantCode)
		}
	}
	if sec, ok := fake.Lookup("k"); !ok || sec.KMSKeyID != "k1" {
		t.Errorf("Lookup(k) = %+v, %t; want KMS key k1", sec, ok)
	}
	if got, want := fake.Names(), []string{"k"}; !slices.Equal(got, want) {
		t.Errorf("Names() = %q, want %q (c is scheduled for deletion)", got, want)
	}
}

// TestListPaging checks that ListSecrets pages cover every secret once,
// in pages of at most PageSize, also while secrets are created between
// pages, and that the name filter is a case-sensitive prefix match.
func TestListPaging(t *testing.T) {
	t.Parallel()
	fake := New(t, Options{PageSize: 3})
	for i := range 8 {
		fake.PutString(fmt.Sprintf("key-%d", i), "v")
	}
	fake.PutString("KEY-x", "v")
	var got []string
	next := ""
	for pages := 0; ; pages++ {
		body := `{"MaxResults":100,"Filters":[{"Key":"name","Values":["key-"]}]`
		if next != "" {
			body += `,"NextToken":"` + next + `"`
		}
		body += "}"
		page := fake.list(t, body)
		if len(page.SecretList) > 3 {
			t.Fatalf("page of %d secrets, want at most 3", len(page.SecretList))
		}
		for _, s := range page.SecretList {
			got = append(got, s.Name)
		}
		if pages == 0 {
			fake.PutString("key-new", "v") // created while listing
		}
		if page.NextToken == "" {
			break
		}
		next = page.NextToken
	}
	slices.Sort(got)
	want := []string{"key-0", "key-1", "key-2", "key-3", "key-4", "key-5", "key-6", "key-7", "key-new"}
	if !slices.Equal(got, want) {
		t.Errorf("listed %q, want %q", got, want)
	}
}

type listOutput struct {
	SecretList []struct{ Name string }
	NextToken  string
}

func (s *Server) list(t *testing.T, body string) listOutput {
	t.Helper()
	r, _ := http.NewRequest(http.MethodPost, s.URL+"/", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-amz-json-1.1")
	r.Header.Set("X-Amz-Target", "secretsmanager.ListSecrets")
	creds := aws.Credentials{AccessKeyID: AccessKeyID, SecretAccessKey: SecretAccessKey}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, r, hexSHA256([]byte(body)), "secretsmanager", s.Region(), time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out listOutput
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("ListSecrets: status %d, %v", resp.StatusCode, err)
	}
	return out
}

// format is the inverse of parseAuthorization.
func (a *authorization) format() string {
	return fmt.Sprintf("%s Credential=%s/%s, SignedHeaders=%s, Signature=%s",
		sigV4Algorithm, a.AccessKeyID, a.scope(), strings.Join(a.SignedHeaders, ";"), hex.EncodeToString(a.Signature))
}

func FuzzParseAuthorization(f *testing.F) {
	f.Add("AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/secretsmanager/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=" + strings.Repeat("ab", 32))
	f.Add("AWS4-HMAC-SHA256 Credential=a/20200101/r/s/aws4_request,SignedHeaders=host,Signature=" + strings.Repeat("00", 32))
	f.Add("AWS4-HMAC-SHA256 Credential=//////")
	f.Add("")
	f.Fuzz(func(t *testing.T, h string) {
		a, err := parseAuthorization(h)
		if err != nil {
			return
		}
		b, err := parseAuthorization(a.format())
		if err != nil {
			t.Fatalf("parsing the formatted %q: %v", a.format(), err)
		}
		if a.format() != b.format() || !bytes.Equal(a.Signature, b.Signature) {
			t.Fatalf("round trip changed %q to %q", a.format(), b.format())
		}
	})
}
