package api

import (
	"errors"
	"time"

	"github.com/openkes/openkes/kes"
)

var errInvalidVersion = errors.New("version is neither a string nor a number")

// The JSON wire types of the v1 API. Field order, JSON names and omitempty
// rules are part of the wire contract: do not reorder fields. []byte fields
// travel as standard, padded base64 (encoding/json's default).

// VersionResponse is the body of GET /version.
type VersionResponse struct {
	Version string `json:"version"`
	Commit  string `json:"commit"`
}

// StatusResponse is the body of GET /v1/status. There is deliberately no
// keystore_unavailable field (docs/api.md#status).
type StatusResponse struct {
	Version             string `json:"version"`
	OS                  string `json:"os"`
	Arch                string `json:"arch"`
	UpTime              int64  `json:"uptime"` // seconds, rounded
	CPUs                int    `json:"num_cpu"`
	UsableCPUs          int    `json:"num_cpu_used"`
	HeapAlloc           uint64 `json:"mem_heap_used"`
	StackAlloc          uint64 `json:"mem_stack_used"`
	KeyStoreLatency     int64  `json:"keystore_latency,omitempty"` // milliseconds
	KeyStoreUnreachable bool   `json:"keystore_unreachable,omitempty"`
}

// RouteResponse is one element of the GET /v1/api array.
type RouteResponse struct {
	Method  string `json:"method"`
	Path    string `json:"path"`
	MaxBody int64  `json:"max_body"`
	Timeout int64  `json:"timeout"` // whole seconds, 0 = none
}

// ImportKeyRequest is the body of PUT|POST /v1/key/import/<name>.
type ImportKeyRequest struct {
	Key    []byte `json:"key"`
	Cipher string `json:"cipher"`
}

// Creation is when and by whom a key or identity was created. Embedded,
// it encodes as the fields created_at and created_by.
type Creation struct {
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by,omitempty"`
}

// DescribeKeyResponse is the body of GET /v1/key/describe/<name>.
type DescribeKeyResponse struct {
	Name      string `json:"name"`
	Algorithm string `json:"algorithm"`
	Creation

	// OpenKES extensions (docs/keys.md), absent for a key that was never
	// rotated and is not scheduled for deletion. Versions and Deletion
	// have the SDK's element types: the wire form is the one kes decodes.
	Version  int                  `json:"version,omitempty"`  // the newest version of a rotated key
	Versions []kes.KeyVersionInfo `json:"versions,omitempty"` // every version of a rotated key, oldest first
	Deletion *kes.KeyDeletion     `json:"deletion,omitempty"` // set while scheduled for deletion
}

// ListKeysResponse is the body of GET /v1/key/list/<pattern>. Names is
// never nil. Scheduled, an OpenKES extension, names the listed keys that
// are scheduled for deletion and is absent when none is.
type ListKeysResponse struct {
	Names      []string `json:"names"`
	ContinueAt string   `json:"continue_at,omitempty"`
	Scheduled  []string `json:"scheduled,omitempty"`
}

// RotateKeyResponse is the body of PUT|POST /v1/key/rotate/<name>.
type RotateKeyResponse struct {
	Version int `json:"version"`
}

// RewrapKeyRequest is the body of PUT|POST /v1/key/rewrap/<name>.
type RewrapKeyRequest struct {
	Ciphertext []byte `json:"ciphertext"`
	Context    []byte `json:"context"`
}

// GenerateKeyRequest is the optional body of PUT|POST /v1/key/generate/<name>.
// Version is accepted and ignored.
type GenerateKeyRequest struct {
	Context []byte `json:"context"`
	Version string `json:"version"`
}

// GenerateKeyResponse is the body of a data-key generation: the SDK's
// DEK, whose version is absent for a key that was never rotated.
type GenerateKeyResponse = kes.DEK

// EncryptKeyRequest is the body of PUT|POST /v1/key/encrypt/<name>.
type EncryptKeyRequest struct {
	Plaintext []byte `json:"plaintext"`
	Context   []byte `json:"context"`
	Version   string `json:"version"`
}

// EncryptKeyResponse is the answer of an encryption.
type EncryptKeyResponse struct {
	Ciphertext []byte `json:"ciphertext"`
}

// DecryptKeyRequest is the body of PUT|POST /v1/key/decrypt/<name>.
type DecryptKeyRequest struct {
	Ciphertext []byte         `json:"ciphertext"`
	Context    []byte         `json:"context"`
	Version    RequestVersion `json:"version"`
}

// RequestVersion is the optional "version" of a decrypt request. A JSON
// string, what kms-go sends, is ignored, as upstream ignores it; a JSON
// number is a key version the ciphertext must be of (docs/keys.md). null
// or absence leave it unset. Any other JSON value is an invalid body.
type RequestVersion struct {
	// N is the version asked for if Set: a positive integer, or -1 for a
	// number that is no version (0, negative, fractional, too large),
	// which no ciphertext matches.
	N   int
	Set bool
}

// UnmarshalJSON implements json.Unmarshaler without allocating. b is one
// valid JSON value (encoding/json checks that first).
func (v *RequestVersion) UnmarshalJSON(b []byte) error {
	if len(b) == 0 {
		return errInvalidVersion
	}
	switch c := b[0]; {
	case c == '"' || string(b) == "null":
		return nil
	case c == '-' || c >= '0' && c <= '9':
		v.N, v.Set = parseVersionNumber(b), true
		return nil
	}
	return errInvalidVersion
}

// parseVersionNumber returns the JSON number b as a key version, or -1.
func parseVersionNumber(b []byte) int {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int(c-'0')
		if n > maxRequestVersion {
			return -1
		}
	}
	if n == 0 {
		return -1
	}
	return n
}

// maxRequestVersion is the largest version a ciphertext header can name
// (crypto.MaxVersion).
const maxRequestVersion = 1<<32 - 1

// DecryptKeyResponse is the answer of a decryption.
type DecryptKeyResponse struct {
	Plaintext []byte `json:"plaintext"`
}

// HMACRequest is the body of PUT|POST /v1/key/hmac/<name>.
type HMACRequest struct {
	Message []byte `json:"message"`
	Version string `json:"version"`
}

// HMACResponse is the answer of an HMAC computation.
type HMACResponse struct {
	HMAC []byte `json:"hmac"`
}

// DescribePolicyResponse is the body of GET /v1/policy/describe/<name>.
// It is the SDK's type, which encodes the same fields.
type DescribePolicyResponse = kes.PolicyInfo

// RuleSet is a set of policy patterns; it encodes as a JSON object whose
// keys are the patterns and whose values are empty objects.
type RuleSet map[string]struct{}

// ReadPolicyResponse is the body of GET /v1/policy/read/<name>.
// The name comes first, then the fields of the SDK's Policy.
type ReadPolicyResponse struct {
	Name string `json:"name"`
	kes.Policy
}

// ListPoliciesResponse is the body of GET /v1/policy/list/<pattern>.
// ContinueAt is always present (and empty).
type ListPoliciesResponse struct {
	Names      []string `json:"names"`
	ContinueAt string   `json:"continue_at"`
}

// DescribeIdentityResponse is the body of GET /v1/identity/describe/<id>.
type DescribeIdentityResponse struct {
	IsAdmin bool   `json:"admin,omitempty"`
	Policy  string `json:"policy,omitempty"`
	Creation
}

// ListIdentitiesResponse is the body of GET /v1/identity/list/<pattern>.
// ContinueAt is always present (and empty).
type ListIdentitiesResponse struct {
	Identities []string `json:"identities"`
	ContinueAt string   `json:"continue_at"`
}

// SelfDescribeResponse is the body of GET /v1/identity/self/describe, in
// the shape kms-go's DescribeSelf decodes: the policy name as a string and
// its rules at top level.
type SelfDescribeResponse struct {
	Identity string `json:"identity"`
	IsAdmin  bool   `json:"admin,omitempty"`
	Creation
	Policy string  `json:"policy,omitempty"`
	Allow  RuleSet `json:"allow,omitempty"`
	Deny   RuleSet `json:"deny,omitempty"`
}

// ErrorResponse is the decoded form of an error body. Error bodies are
// written by [WriteError], not by encoding this type.
type ErrorResponse struct {
	Message string `json:"message"`
}

// AuditEvent is one line of the /v1/log/audit stream.
type AuditEvent struct {
	Time     time.Time     `json:"time"`
	Request  AuditRequest  `json:"request"`
	Response AuditResponse `json:"response"`
}

// AuditRequest describes the request of an AuditEvent.
type AuditRequest struct {
	IP       string `json:"ip,omitempty"`
	Path     string `json:"path"`
	Identity string `json:"identity,omitempty"`
}

// AuditResponse describes the response of an AuditEvent.
type AuditResponse struct {
	StatusCode int   `json:"code"`
	Time       int64 `json:"time"` // milliseconds, as upstream (most requests: 0)
	// TimeNS is the same time in nanoseconds, an OpenKES extension that
	// clients ignoring unknown fields (kms-go) do not see.
	TimeNS int64 `json:"time_ns,omitempty"`
}

// ErrorEvent is one line of the /v1/log/error stream.
type ErrorEvent struct {
	Message string `json:"message"` // one slog text line without newline
}
