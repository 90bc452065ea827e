package crypto

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var testTime = time.Date(2024, 1, 12, 10, 39, 20, 886816000, time.UTC)

// Protobuf builders for tests. They use encoding/binary's varint, which is
// the protobuf one, so they are independent of the package's encoder.
func pbVarint(v uint64) []byte { return binary.AppendUvarint(nil, v) }

func pbTag(num, typ int) []byte { return pbVarint(uint64(num)<<3 | uint64(typ)) }

func pbLen(num int, parts ...[]byte) []byte {
	payload := bytes.Join(parts, nil)
	b := append(pbTag(num, 2), pbVarint(uint64(len(payload)))...)
	return append(b, payload...)
}

func pbUint(num int, v uint64) []byte { return append(pbTag(num, 0), pbVarint(v)...) }

func pbCat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func seq(start byte) []byte {
	b := make([]byte, 32)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

// TestMarshalTextExact checks the exact encoding of each version, or
// that MarshalText fails (want nil).
func TestMarshalTextExact(t *testing.T) {
	t.Parallel()
	hmacKey, _ := NewHMACKey(seq(0x20))
	tests := []struct {
		name string
		v    KeyVersion
		want []byte // protobuf; nil: MarshalText fails
	}{
		{name: "no-hmac", v: KeyVersion{Key: newKey(t, AES256, seq(0))}},
		{name: "zero-key", v: KeyVersion{HMACKey: hmacKey, HasHMAC: true}},
		{name: "invalid-utf8-creator", v: KeyVersion{Key: newKey(t, AES256, seq(0)), HMACKey: hmacKey, HasHMAC: true, CreatedBy: "\xff"}},
		{
			name: "aes/time/creator",
			v:    KeyVersion{Key: newKey(t, AES256, seq(0)), HMACKey: hmacKey, HasHMAC: true, CreatedAt: testTime, CreatedBy: "abc"},
			want: pbCat(
				pbLen(1, pbLen(1, seq(0)), pbUint(2, 1)),
				pbLen(2, pbLen(1, seq(0x20)), pbUint(2, 1)),
				unhex(t, "1a0c08d8ad84ad061080faeea603"), // from the upstream test vector
				pbLen(4, []byte("abc")),
			),
		},
		{
			name: "chacha/no-creator/whole-second/non-utc",
			v:    KeyVersion{Key: newKey(t, ChaCha20, seq(0)), HMACKey: hmacKey, HasHMAC: true, CreatedAt: time.Date(2024, 1, 12, 11, 39, 20, 0, time.FixedZone("CET", 3600))},
			want: pbCat(
				pbLen(1, pbLen(1, seq(0)), pbUint(2, 2)),
				pbLen(2, pbLen(1, seq(0x20)), pbUint(2, 1)),
				pbLen(3, pbUint(1, 1705055960)), // nanos 0 omitted
			),
		},
		{
			name: "epoch-is-empty-timestamp",
			v:    KeyVersion{Key: newKey(t, AES256, seq(0)), HMACKey: hmacKey, HasHMAC: true, CreatedAt: time.Unix(0, 0)},
			want: pbCat(
				pbLen(1, pbLen(1, seq(0)), pbUint(2, 1)),
				pbLen(2, pbLen(1, seq(0x20)), pbUint(2, 1)),
				unhex(t, "1a00"),
			),
		},
		{
			name: "zero-time-negative-seconds",
			v:    KeyVersion{Key: newKey(t, AES256, seq(0)), HMACKey: hmacKey, HasHMAC: true},
			want: pbCat(
				pbLen(1, pbLen(1, seq(0)), pbUint(2, 1)),
				pbLen(2, pbLen(1, seq(0x20)), pbUint(2, 1)),
				pbLen(3, pbUint(1, uint64(time.Time{}.Unix()))), // 10-byte two's complement varint
			),
		},
		{
			name: "before-1970-with-nanos",
			v:    KeyVersion{Key: newKey(t, AES256, seq(0)), HMACKey: hmacKey, HasHMAC: true, CreatedAt: time.Unix(-2, 5e8)},
			want: pbCat(
				pbLen(1, pbLen(1, seq(0)), pbUint(2, 1)),
				pbLen(2, pbLen(1, seq(0x20)), pbUint(2, 1)),
				pbLen(3, pbUint(1, uint64(1<<64-2)), pbUint(2, 5e8)),
			),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := tt.v.MarshalText()
			if tt.want == nil {
				if err == nil {
					t.Errorf("MarshalText() = %s, nil; want error", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("MarshalText() = %v", err)
			}
			if want := base64.StdEncoding.EncodeToString(tt.want); string(got) != want {
				t.Errorf("MarshalText() = %s, want %s", got, want)
			}
			v, err := ParseKeyVersion(got)
			if err != nil {
				t.Fatalf("ParseKeyVersion(MarshalText()) = %v", err)
			}
			want := tt.v
			want.CreatedAt = want.CreatedAt.UTC()
			if diff := cmp.Diff(want, v); diff != "" {
				t.Errorf("round trip mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestKeyVersionRoundTrip(t *testing.T) {
	t.Parallel()
	times := map[string]time.Time{
		"now":           time.Now(), // has a monotonic reading and a local zone
		"zero":          {},
		"epoch":         time.Unix(0, 0),
		"before-1970":   time.Unix(-1, 1),
		"far-future":    time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		"offset":        time.Date(2024, 1, 12, 11, 39, 20, 886816000, time.FixedZone("", 3600)),
		"max-nanos":     time.Unix(1, 999999999),
		"year-0-ish":    time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		"unix-nano-max": time.Unix(0, 1<<63-1),
	}
	creators := []string{"", "3ecfcdf38fcbe141ae26a1030f81e96b753365a46760ae6b578698a97c59fd22", "ünïcödé ✓", strings.Repeat("x", 300)}
	for _, alg := range []Algorithm{AES256, ChaCha20} {
		for name, tm := range times {
			for i, by := range creators {
				t.Run(alg.String()+"/"+name+"/"+string(rune('a'+i)), func(t *testing.T) {
					t.Parallel()
					v, err := GenerateKeyVersion(alg, tm, by, nil)
					if err != nil {
						t.Fatal(err)
					}
					if v.CreatedAt != tm.UTC() {
						t.Errorf("CreatedAt = %v, want %v", v.CreatedAt, tm.UTC())
					}
					text, err := v.MarshalText()
					if err != nil {
						t.Fatalf("MarshalText() = %v", err)
					}
					got, err := ParseKeyVersion(text)
					if err != nil {
						t.Fatalf("ParseKeyVersion() = %v", err)
					}
					if diff := cmp.Diff(v, got); diff != "" {
						t.Errorf("round trip mismatch (-want +got):\n%s", diff)
					}
					if got.CreatedAt != v.CreatedAt { // cmp uses Equal; be strict
						t.Errorf("CreatedAt = %#v, want %#v", got.CreatedAt, v.CreatedAt)
					}
					text2, _ := got.MarshalText()
					if !bytes.Equal(text, text2) {
						t.Errorf("re-encoding differs: %s != %s", text2, text)
					}
				})
			}
		}
	}
}

func TestGenerateKeyVersion(t *testing.T) {
	t.Parallel()
	local := time.Date(2024, 5, 6, 7, 8, 9, 10, time.FixedZone("X", -7200))
	v, err := GenerateKeyVersion(ChaCha20, local, "me", seededRand(5))
	if err != nil {
		t.Fatal(err)
	}
	w, _ := GenerateKeyVersion(ChaCha20, local, "me", seededRand(5))
	if diff := cmp.Diff(v, w); diff != "" {
		t.Errorf("GenerateKeyVersion(seeded) not deterministic:\n%s", diff)
	}
	if v.Key.Algorithm() != ChaCha20 || !v.HasHMAC || v.CreatedBy != "me" || v.CreatedAt.Location() != time.UTC || !v.CreatedAt.Equal(local) {
		t.Errorf("GenerateKeyVersion() = %+v", v)
	}
	if v.Key.b == v.HMACKey.b || v.HMACKey.b == [32]byte{} {
		t.Errorf("HMAC key equals secret key or is zero")
	}

	if _, err := GenerateKeyVersion(0, local, "", nil); err == nil {
		t.Errorf("GenerateKeyVersion(0) = nil error")
	}
	if _, err := GenerateKeyVersion(AES256, local, "", failingReader{}); err == nil {
		t.Errorf("GenerateKeyVersion(failing reader) = nil error")
	}
	// The secret key comes first from rand, so 32 bytes are not enough.
	if _, err := GenerateKeyVersion(AES256, local, "", bytes.NewReader(make([]byte, 32))); err == nil {
		t.Errorf("GenerateKeyVersion(32 random bytes) = nil error")
	}
	if _, err := ImportKeyVersion(SecretKey{}, local, "", nil); err == nil {
		t.Errorf("ImportKeyVersion(zero key) = nil error")
	}
	key := newKey(t, AES256, seq(9))
	imp, err := ImportKeyVersion(key, local, "admin", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !imp.Key.Equal(key) || !imp.HasHMAC || imp.CreatedBy != "admin" {
		t.Errorf("ImportKeyVersion() = %+v", imp)
	}
}

// validProto is a valid key version; its fields end at offsets 38, 76, 90
// and len.
func validProto(t testing.TB) []byte {
	t.Helper()
	return pbCat(
		pbLen(1, pbLen(1, seq(0)), pbUint(2, 1)),
		pbLen(2, pbLen(1, seq(0x20)), pbUint(2, 1)),
		unhex(t, "1a0c08d8ad84ad061080faeea603"),
		pbLen(4, []byte("abc")),
	)
}

func TestParseKeyVersionProtobuf(t *testing.T) {
	t.Parallel()
	key := pbLen(1, pbLen(1, seq(0)), pbUint(2, 1))
	hmacKey := pbLen(2, pbLen(1, seq(0x20)), pbUint(2, 1))
	ts := unhex(t, "1a0c08d8ad84ad061080faeea603")
	by := pbLen(4, []byte("abc"))
	unknown := pbCat(
		pbUint(5, 1<<63),             // varint
		pbTag(6, 1), make([]byte, 8), // fixed64
		pbLen(7, []byte("whatever")), // bytes
		pbTag(8, 5), make([]byte, 4), // fixed32
		pbTag(9, 3), pbUint(1, 1), pbTag(10, 3), pbLen(2, nil), pbTag(10, 4), pbTag(9, 4), // nested groups
		pbTag(1<<29-1, 0), pbVarint(0), // largest valid field number
	)
	hmacWant, _ := NewHMACKey(seq(0x20))
	base := KeyVersion{Key: newKey(t, AES256, seq(0)), HMACKey: hmacWant, HasHMAC: true, CreatedAt: testTime, CreatedBy: "abc"}
	epoch := base
	epoch.CreatedAt = time.Unix(0, 0).UTC()
	noCreator := base
	noCreator.CreatedBy = ""
	chacha := base
	chacha.Key = newKey(t, ChaCha20, seq(0))

	tests := []struct {
		name string
		in   []byte
		want KeyVersion
	}{
		{"canonical", pbCat(key, hmacKey, ts, by), base},
		{"reordered", pbCat(by, ts, hmacKey, key), base},
		{"unknown-fields-top", pbCat(unknown, key, unknown, hmacKey, ts, by, unknown), base},
		{"unknown-fields-nested", pbCat(
			pbLen(1, unknown, pbLen(1, seq(0)), unknown, pbUint(2, 1), unknown),
			pbLen(2, pbLen(1, seq(0x20)), unknown, pbUint(2, 1)),
			pbLen(3, unknown, pbUint(1, 1705055960), pbUint(2, 886816000), unknown),
			by), base},
		{"no-timestamp-is-epoch", pbCat(key, hmacKey, by), epoch},
		{"empty-creator-field", pbCat(key, hmacKey, ts, pbLen(4, nil)), noCreator},
		{"known-field-wrong-wire-type-is-unknown", pbCat(key, hmacKey, ts, pbUint(4, 7), pbTag(1, 5), make([]byte, 4)), noCreator},
		{"scalar-last-wins", pbCat(pbLen(1, pbLen(1, seq(0x40)), pbUint(2, 2), pbLen(1, seq(0)), pbUint(2, 1)), hmacKey, ts, pbLen(4, []byte("x")), by), base},
		{"messages-merge", pbCat(pbLen(1, pbLen(1, seq(0))), pbLen(1, pbUint(2, 2)), hmacKey, pbLen(3, pbUint(1, 1705055960)), pbLen(3, pbUint(2, 886816000)), by), chacha},
		{"type-truncated-to-uint32", pbCat(pbLen(1, pbLen(1, seq(0)), pbUint(2, 1<<32|1)), hmacKey, ts, by), base},
		{"non-minimal-varint", pbCat(pbLen(1, pbLen(1, seq(0)), pbTag(2, 0), []byte{0x81, 0x80, 0x00}), hmacKey, ts, by), base},
		{"base64-with-newline", nil, base}, // filled below
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			text := []byte(base64.StdEncoding.EncodeToString(tt.in))
			if tt.in == nil {
				text = []byte(base64.StdEncoding.EncodeToString(validProto(t)) + "\n")
			}
			got, err := ParseKeyVersion(text)
			if err != nil {
				t.Fatalf("ParseKeyVersion() = %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseKeyVersion() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseKeyVersionProtobufErrors(t *testing.T) {
	t.Parallel()
	key := pbLen(1, pbLen(1, seq(0)), pbUint(2, 1))
	hmacKey := pbLen(2, pbLen(1, seq(0x20)), pbUint(2, 1))
	ts := unhex(t, "1a0c08d8ad84ad061080faeea603")
	deep := bytes.Repeat(pbTag(5, 3), 20000)
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"no-secret-key", pbCat(hmacKey, ts)},
		{"no-hmac-key", pbCat(key, ts)},
		{"empty-hmac-key", pbCat(key, pbLen(2), ts)},
		{"secret-key-31", pbCat(pbLen(1, pbLen(1, seq(0)[:31]), pbUint(2, 1)), hmacKey)},
		{"secret-key-33", pbCat(pbLen(1, pbLen(1, append(seq(0), 0)), pbUint(2, 1)), hmacKey)},
		{"secret-key-type-0", pbCat(pbLen(1, pbLen(1, seq(0))), hmacKey)},
		{"secret-key-type-3", pbCat(pbLen(1, pbLen(1, seq(0)), pbUint(2, 3)), hmacKey)},
		{"secret-key-type-257", pbCat(pbLen(1, pbLen(1, seq(0)), pbUint(2, 257)), hmacKey)},
		{"hmac-key-31", pbCat(key, pbLen(2, pbLen(1, seq(0)[:31]), pbUint(2, 1)))},
		{"hmac-hash-0", pbCat(key, pbLen(2, pbLen(1, seq(0))))},
		{"hmac-hash-2", pbCat(key, pbLen(2, pbLen(1, seq(0)), pbUint(2, 2)))},
		{"creator-invalid-utf8", pbCat(key, hmacKey, pbLen(4, []byte{0xff}))},
		{"field-number-0", pbCat(key, hmacKey, pbTag(0, 0), pbVarint(1))},
		{"field-number-too-big", pbCat(key, hmacKey, pbVarint(uint64(1<<31)<<3), pbVarint(1))},
		{"wire-type-6", pbCat(key, hmacKey, pbTag(9, 6))},
		{"wire-type-7", pbCat(key, hmacKey, pbTag(9, 7))},
		{"end-group-at-top", pbCat(key, hmacKey, pbTag(9, 4))},
		{"end-group-mismatch", pbCat(key, hmacKey, pbTag(9, 3), pbTag(8, 4))},
		{"group-unterminated", pbCat(key, hmacKey, pbTag(9, 3), pbUint(1, 1))},
		{"group-too-deep", pbCat(key, hmacKey, deep)},
		{"varint-11-bytes", pbCat(key, hmacKey, pbTag(9, 0), bytes.Repeat([]byte{0x80}, 10), []byte{0})},
		{"varint-overflow", pbCat(key, hmacKey, pbTag(9, 0), bytes.Repeat([]byte{0xff}, 9), []byte{0x02})},
		{"varint-truncated", pbCat(key, hmacKey, pbTag(9, 0), []byte{0x80})},
		{"length-too-big", pbCat(key, hmacKey, pbTag(4, 2), pbVarint(1<<63))},
		{"length-past-end", pbCat(key, hmacKey, pbTag(4, 2), pbVarint(4), []byte("abc"))},
		{"fixed64-truncated", pbCat(key, hmacKey, pbTag(9, 1), make([]byte, 7))},
		{"fixed32-truncated", pbCat(key, hmacKey, pbTag(9, 5), make([]byte, 3))},
		{"nested-truncated", pbCat(pbLen(1, pbLen(1, seq(0)), pbTag(2, 0)), hmacKey)},
		{"nested-bad-wire-type", pbCat(pbLen(1, pbLen(1, seq(0)), pbUint(2, 1), pbTag(3, 7)), hmacKey)},
		{"timestamp-truncated", pbCat(key, hmacKey, pbLen(3, pbTag(1, 0)))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseKeyVersion([]byte(base64.StdEncoding.EncodeToString(tt.in)))
			if err == nil {
				t.Fatalf("ParseKeyVersion() = %+v, nil; want error", got)
			}
			if !errors.Is(err, ErrInvalidKeyVersion) {
				t.Errorf("ParseKeyVersion() = %v, want ErrInvalidKeyVersion", err)
			}
			assertNoKeyBytes(t, err.Error(), seq(0), seq(0x20))
		})
	}
}

// TestParseKeyVersionTruncated cuts a valid encoding at every length: only
// cuts at field boundaries that keep both keys may parse.
func TestParseKeyVersionTruncated(t *testing.T) {
	t.Parallel()
	pb := validProto(t)
	boundaries := map[int]bool{76: true, 90: true, len(pb): true}
	for n := 0; n <= len(pb); n++ {
		_, err := ParseKeyVersion([]byte(base64.StdEncoding.EncodeToString(pb[:n])))
		if ok := err == nil; ok != boundaries[n] {
			t.Errorf("ParseKeyVersion(first %d of %d bytes) = %v, want success %t", n, len(pb), err, boundaries[n])
		}
	}
}

// assertNoKeyBytes fails if s shows any of keys in hex, base64 or as a Go
// byte slice (fmt's decimal list).
func assertNoKeyBytes(t testing.TB, s string, keys ...[]byte) {
	t.Helper()
	for _, k := range keys {
		forms := []string{
			hex.EncodeToString(k[8:16]),
			strings.ToUpper(hex.EncodeToString(k[8:16])),
			base64.StdEncoding.EncodeToString(k)[:16],
			base64.RawURLEncoding.EncodeToString(k)[:16],
			strings.Trim(fmt.Sprint(k[8:16]), "[]"),
		}
		for _, f := range forms {
			if strings.Contains(s, f) {
				t.Errorf("%q shows key bytes (%q)", s, f)
			}
		}
	}
}

func TestIsJSON(t *testing.T) {
	t.Parallel()
	inputs := []string{"", " ", "{}", " \t\r\n{}", "[1]", `"x"`, "true", "false", "null", "-1", "0", "9",
		"tru", "{", "C", protoVector, "1234", "12a", "\v{}", "\x00", "\ufeff{}", "nul", "+1", "'x'"}
	for _, in := range inputs {
		if got, want := isJSON([]byte(in)), json.Valid([]byte(in)); got != want {
			t.Errorf("isJSON(%q) = %t, want %t (json.Valid)", in, got, want)
		}
	}
}

// Timestamps need not be normalised on input (protobuf-go's AsTime does not
// check either); they are normalised on output.
func TestParseKeyVersionTimestamps(t *testing.T) {
	t.Parallel()
	key := pbLen(1, pbLen(1, seq(0)), pbUint(2, 1))
	hmacKey := pbLen(2, pbLen(1, seq(0x20)), pbUint(2, 1))
	neg := func(v int64) uint64 { return uint64(v) }
	tests := []struct {
		name          string
		seconds, nano uint64
		want          time.Time
		wantTS        []byte // re-encoded Timestamp payload
	}{
		{"negative-nanos", 100, neg(-1), time.Unix(99, 999999999), pbCat(pbUint(1, 99), pbUint(2, 999999999))},
		{"nanos-over-1e9", 0, 2e9, time.Unix(2, 0), pbUint(1, 2)},
		{"nanos-truncated-to-int32", 1, 1<<32 | 5, time.Unix(1, 5), pbCat(pbUint(1, 1), pbUint(2, 5))},
		{"negative-seconds", neg(-86400), 0, time.Unix(-86400, 0), pbUint(1, neg(-86400))},
		{"max-seconds", 1<<63 - 1, 0, time.Unix(1<<63-1, 0), pbUint(1, 1<<63-1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := pbCat(key, hmacKey, pbLen(3, pbUint(1, tt.seconds), pbUint(2, tt.nano)))
			v, err := ParseKeyVersion([]byte(base64.StdEncoding.EncodeToString(in)))
			if err != nil {
				t.Fatalf("ParseKeyVersion() = %v", err)
			}
			if v.CreatedAt != tt.want.UTC() {
				t.Errorf("CreatedAt = %v, want %v", v.CreatedAt, tt.want.UTC())
			}
			text, err := v.MarshalText()
			if err != nil {
				t.Fatal(err)
			}
			if want := base64.StdEncoding.EncodeToString(pbCat(key, hmacKey, pbLen(3, tt.wantTS))); string(text) != want {
				t.Errorf("MarshalText() = %s, want %s", text, want)
			}
		})
	}
}
