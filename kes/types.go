package kes

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
)

// KeyAlgorithm is the cryptographic algorithm of a KES master key. Its
// zero value is AES256.
type KeyAlgorithm uint

// Key algorithms known to KES servers.
const (
	// AES256 is AES-256-GCM with an HMAC-SHA-256 key derivation.
	AES256 KeyAlgorithm = iota
	// ChaCha20 is XChaCha20-Poly1305.
	ChaCha20
)

// String returns "AES256" or "ChaCha20", or "%!KeyAlgorithm(<n>)" for an
// unknown value.
func (a KeyAlgorithm) String() string {
	switch a {
	case AES256:
		return "AES256"
	case ChaCha20:
		return "ChaCha20"
	default:
		return "%!KeyAlgorithm(" + strconv.FormatUint(uint64(a), 10) + ")"
	}
}

// MarshalText returns the wire name of the algorithm, "AES256" or
// "ChaCha20". It returns an error for any other value.
func (a KeyAlgorithm) MarshalText() ([]byte, error) {
	switch a {
	case AES256, ChaCha20:
		return []byte(a.String()), nil
	default:
		return nil, fmt.Errorf("kes: unknown key algorithm %d", uint(a))
	}
}

// UnmarshalText parses the wire name of an algorithm: "AES256" or
// "AES256-GCM_SHA256" for AES256, "ChaCha20" or "XCHACHA20-POLY1305" for
// ChaCha20. Names are case-sensitive. It returns an error for any other
// text and leaves a unchanged.
func (a *KeyAlgorithm) UnmarshalText(text []byte) error {
	switch string(text) {
	case "AES256", "AES256-GCM_SHA256":
		*a = AES256
	case "ChaCha20", "XCHACHA20-POLY1305":
		*a = ChaCha20
	default:
		return fmt.Errorf("kes: unknown key algorithm %q", text)
	}
	return nil
}

// State describes a KES server, as reported by GET /v1/status.
//
// Its JSON form is the server's: uptime in whole seconds and
// keystore_latency in whole milliseconds (omitted when zero).
type State struct {
	Version    string        // server version
	OS         string        // operating system (GOOS)
	Arch       string        // CPU architecture (GOARCH)
	UpTime     time.Duration // time since the server started
	CPUs       int           // logical CPUs of the host
	UsableCPUs int           // CPUs the server may use (GOMAXPROCS)
	HeapAlloc  uint64        // heap bytes in use
	StackAlloc uint64        // stack bytes obtained from the OS

	// KeyStoreLatency is the time the key store took to answer a status
	// request. The server sends milliseconds.
	KeyStoreLatency time.Duration

	// KeyStoreUnreachable is true when the server could not get the status
	// of its key store.
	KeyStoreUnreachable bool
}

type stateJSON struct {
	Version             string      `json:"version"`
	OS                  string      `json:"os"`
	Arch                string      `json:"arch"`
	UpTime              json.Number `json:"uptime"`
	CPUs                int         `json:"num_cpu"`
	UsableCPUs          int         `json:"num_cpu_used"`
	HeapAlloc           uint64      `json:"mem_heap_used"`
	StackAlloc          uint64      `json:"mem_stack_used"`
	KeyStoreLatency     json.Number `json:"keystore_latency,omitempty"`
	KeyStoreUnreachable bool        `json:"keystore_unreachable,omitempty"`
}

// MarshalJSON encodes the state in the server's wire format, rounding to
// whole seconds and milliseconds. It never fails.
func (s State) MarshalJSON() ([]byte, error) {
	v := stateJSON{
		Version:             s.Version,
		OS:                  s.OS,
		Arch:                s.Arch,
		UpTime:              numberOf(s.UpTime, time.Second),
		CPUs:                s.CPUs,
		UsableCPUs:          s.UsableCPUs,
		HeapAlloc:           s.HeapAlloc,
		StackAlloc:          s.StackAlloc,
		KeyStoreUnreachable: s.KeyStoreUnreachable,
	}
	switch ms := s.KeyStoreLatency.Round(time.Millisecond); {
	case ms != 0:
		v.KeyStoreLatency = numberOf(ms, time.Millisecond)
	case s.KeyStoreLatency > 0:
		v.KeyStoreLatency = "1" // like the server: a reachable store takes at least 1 ms
	}
	return json.Marshal(v)
}

// UnmarshalJSON decodes the server's wire format. uptime is read as
// seconds and keystore_latency as milliseconds; both may be integers or
// decimals. It returns an error for malformed JSON or out-of-range
// numbers. keystore_unreachable=true is not an error.
func (s *State) UnmarshalJSON(b []byte) error {
	var v stateJSON
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	upTime, err := durationOf(v.UpTime, time.Second)
	if err != nil {
		return fmt.Errorf("kes: invalid uptime: %w", err)
	}
	latency, err := durationOf(v.KeyStoreLatency, time.Millisecond)
	if err != nil {
		return fmt.Errorf("kes: invalid keystore_latency: %w", err)
	}
	*s = State{
		Version:             v.Version,
		OS:                  v.OS,
		Arch:                v.Arch,
		UpTime:              upTime,
		CPUs:                v.CPUs,
		UsableCPUs:          v.UsableCPUs,
		HeapAlloc:           v.HeapAlloc,
		StackAlloc:          v.StackAlloc,
		KeyStoreLatency:     latency,
		KeyStoreUnreachable: v.KeyStoreUnreachable,
	}
	return nil
}

// API describes one route of a KES server, as listed by GET /v1/api.
//
// Its JSON form is the server's: {"method","path","max_body","timeout"}
// with the timeout in whole seconds.
type API struct {
	Method  string        // HTTP method, e.g. "GET"
	Path    string        // route pattern; prefix routes end with "/"
	MaxBody int64         // maximum request body size in bytes; 0 means none is read
	Timeout time.Duration // time the server allows for the response; 0 means none
}

type apiJSON struct {
	Method  string      `json:"method"`
	Path    string      `json:"path"`
	MaxBody int64       `json:"max_body"`
	Timeout json.Number `json:"timeout"`
}

// MarshalJSON encodes the route in the server's wire format, the timeout
// truncated to whole seconds. It never fails.
func (a API) MarshalJSON() ([]byte, error) {
	return json.Marshal(apiJSON{
		Method:  a.Method,
		Path:    a.Path,
		MaxBody: a.MaxBody,
		Timeout: json.Number(strconv.FormatInt(int64(a.Timeout/time.Second), 10)),
	})
}

// UnmarshalJSON decodes the server's wire format, reading the timeout as
// seconds. It returns an error for malformed JSON or out-of-range numbers.
func (a *API) UnmarshalJSON(b []byte) error {
	var v apiJSON
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	timeout, err := durationOf(v.Timeout, time.Second)
	if err != nil {
		return fmt.Errorf("kes: invalid timeout: %w", err)
	}
	*a = API{Method: v.Method, Path: v.Path, MaxBody: v.MaxBody, Timeout: timeout}
	return nil
}

// KeyInfo describes a master key.
//
// Version, Versions and Deletion are OpenKES extensions (docs/keys.md):
// servers send them only for a key that was rotated or is scheduled for
// deletion, so for any other key, and for every key of an upstream
// server, they are zero.
type KeyInfo struct {
	Name      string       `json:"name"`
	Algorithm KeyAlgorithm `json:"algorithm"`
	CreatedAt time.Time    `json:"created_at"`
	CreatedBy Identity     `json:"created_by,omitempty"`

	// Version is the newest version of a rotated key, which generate and
	// encrypt use; 0 for a key that was never rotated (its only version
	// is 1).
	Version int `json:"version,omitempty"`

	// Versions are the versions of a rotated key, oldest first; nil for
	// a key that was never rotated.
	Versions []KeyVersionInfo `json:"versions,omitempty"`

	// Deletion is set when the key is scheduled for deletion.
	Deletion *KeyDeletion `json:"deletion,omitempty"`
}

// KeyVersionInfo describes one version of a rotated master key.
type KeyVersionInfo struct {
	Version   int       `json:"version"` // 1 for the key's first version
	CreatedAt time.Time `json:"created_at"`
	CreatedBy Identity  `json:"created_by,omitempty"`
}

// KeyDeletion is the state of a master key scheduled for deletion: it is
// removed at DeleteAt unless [Client.RestoreKey] restores it before.
type KeyDeletion struct {
	ScheduledAt time.Time `json:"scheduled_at"`
	DeleteAt    time.Time `json:"delete_at"`
	ScheduledBy Identity  `json:"scheduled_by,omitempty"`
}

// ImportKeyRequest is the key material for [Client.ImportKey].
type ImportKeyRequest struct {
	Key    []byte       `json:"key"`    // the 32-byte raw key
	Cipher KeyAlgorithm `json:"cipher"` // the key's algorithm; AES256 if unset
}

// DEK is a data encryption key: a random plaintext key and the same key
// encrypted with a master key.
type DEK struct {
	Plaintext  []byte `json:"plaintext"`
	Ciphertext []byte `json:"ciphertext"`

	// Version is the version of the master key that encrypted the DEK
	// when it is 2 or more, an OpenKES extension; 0 for a key that was
	// never rotated and for upstream servers. Decryption does not need
	// it: the ciphertext names its version.
	Version int `json:"version,omitempty"`
}

// PolicyInfo describes a policy.
type PolicyInfo struct {
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy Identity  `json:"created_by,omitempty"`
}

// Policy is a set of allow and deny rules. Each rule is a path pattern,
// e.g. "/v1/key/generate/my-app-*"; the map values carry nothing.
type Policy struct {
	Allow     map[string]struct{} `json:"allow,omitempty"`
	Deny      map[string]struct{} `json:"deny,omitempty"`
	CreatedAt time.Time           `json:"created_at"`
	CreatedBy Identity            `json:"created_by,omitempty"`
}

// IdentityInfo describes an identity.
type IdentityInfo struct {
	Identity  Identity  `json:"identity"`
	IsAdmin   bool      `json:"admin,omitempty"`  // the server's admin identity
	Policy    string    `json:"policy,omitempty"` // name of the assigned policy
	CreatedAt time.Time `json:"created_at"`
	CreatedBy Identity  `json:"created_by,omitempty"`
}

// numberOf returns d as a whole number of units, rounded.
func numberOf(d, unit time.Duration) json.Number {
	return json.Number(strconv.FormatInt(int64(d.Round(unit)/unit), 10))
}

var errDurationRange = errors.New("duration out of range")

// durationOf converts a JSON number of units (integer or decimal) to a
// duration. An empty number is zero.
func durationOf(n json.Number, unit time.Duration) (time.Duration, error) {
	if n == "" {
		return 0, nil
	}
	if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		if i > math.MaxInt64/int64(unit) || i < math.MinInt64/int64(unit) {
			return 0, errDurationRange
		}
		return time.Duration(i) * unit, nil
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil {
		return 0, err
	}
	f = math.Round(f * float64(unit))
	// float64(MaxInt64) rounds up to 2^63, which does not fit.
	if math.IsNaN(f) || f >= math.MaxInt64 || f < math.MinInt64 {
		return 0, errDurationRange
	}
	return time.Duration(f), nil
}
