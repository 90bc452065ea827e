package awstest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// sigV4Algorithm is the only signing algorithm the fake accepts.
const sigV4Algorithm = "AWS4-HMAC-SHA256"

// authorization is a parsed SigV4 Authorization header:
//
//	AWS4-HMAC-SHA256 Credential=<akid>/<date>/<region>/<service>/aws4_request,
//	SignedHeaders=<h1>;<h2>;..., Signature=<hex>
type authorization struct {
	AccessKeyID   string
	Date          string // yyyymmdd of the credential scope
	Region        string
	Service       string
	SignedHeaders []string // lower case, sorted
	Signature     []byte
}

// scope returns the credential scope of the signature.
func (a *authorization) scope() string {
	return a.Date + "/" + a.Region + "/" + a.Service + "/aws4_request"
}

// parseAuthorization parses the Authorization header of a SigV4-signed
// request. It is the parser of untrusted input that FuzzParseAuthorization
// exercises.
func parseAuthorization(h string) (*authorization, error) {
	alg, rest, ok := strings.Cut(h, " ")
	if !ok || alg != sigV4Algorithm {
		return nil, errors.New("unsupported authorization algorithm")
	}
	var a authorization
	var seen [3]bool
	for part := range strings.SplitSeq(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return nil, fmt.Errorf("malformed authorization component %q", part)
		}
		switch k {
		case "Credential":
			f := strings.Split(v, "/")
			if len(f) != 5 || f[4] != "aws4_request" || slices.Contains(f, "") {
				return nil, errors.New("malformed credential scope")
			}
			a.AccessKeyID, a.Date, a.Region, a.Service = f[0], f[1], f[2], f[3]
			if _, err := time.Parse("20060102", a.Date); err != nil {
				return nil, errors.New("malformed credential date")
			}
			seen[0] = true
		case "SignedHeaders":
			a.SignedHeaders = strings.Split(v, ";")
			for _, name := range a.SignedHeaders {
				if name == "" || name != strings.ToLower(name) {
					return nil, errors.New("malformed signed headers")
				}
			}
			if !slices.IsSorted(a.SignedHeaders) {
				return nil, errors.New("signed headers are not sorted")
			}
			seen[1] = true
		case "Signature":
			sig, err := hex.DecodeString(v)
			if err != nil || len(sig) != sha256.Size {
				return nil, errors.New("malformed signature")
			}
			a.Signature = sig
			seen[2] = true
		default:
			return nil, fmt.Errorf("unknown authorization component %q", k)
		}
	}
	if seen != [3]bool{true, true, true} {
		return nil, errors.New("authorization header requires Credential, SignedHeaders and Signature")
	}
	return &a, nil
}

// signature computes the SigV4 signature of r, whose body is body, for
// the signed headers and scope of a, with the secret access key secret,
// as described in AWS's "Create a signed AWS API request" guide.
func signature(r *http.Request, body []byte, a *authorization, amzDate, secret string) []byte {
	canonical := canonicalRequest(r, body, a.SignedHeaders)
	hashed := sha256.Sum256([]byte(canonical))
	stringToSign := sigV4Algorithm + "\n" + amzDate + "\n" + a.scope() + "\n" + hex.EncodeToString(hashed[:])

	key := hmacSHA256([]byte("AWS4"+secret), a.Date)
	key = hmacSHA256(key, a.Region)
	key = hmacSHA256(key, a.Service)
	key = hmacSHA256(key, "aws4_request")
	return hmacSHA256(key, stringToSign)
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

// canonicalRequest builds the canonical request of SigV4:
//
//	Method \n CanonicalURI \n CanonicalQuery \n CanonicalHeaders \n
//	SignedHeaders \n hex(SHA256(payload))
func canonicalRequest(r *http.Request, body []byte, signed []string) string {
	var b strings.Builder
	b.WriteString(r.Method)
	b.WriteByte('\n')
	path := r.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	b.WriteString(path)
	b.WriteByte('\n')
	b.WriteString(canonicalQuery(r.URL.Query()))
	b.WriteByte('\n')
	for _, name := range signed {
		b.WriteString(name)
		b.WriteByte(':')
		b.WriteString(headerValue(r, name))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.WriteString(strings.Join(signed, ";"))
	b.WriteByte('\n')
	b.WriteString(hexSHA256(body))
	return b.String()
}

func hexSHA256(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// headerValue returns the canonical value of a signed header: the
// values, trimmed and with runs of spaces collapsed, joined by commas.
// Go's server moves Host and Content-Length out of r.Header.
func headerValue(r *http.Request, name string) string {
	var values []string
	switch name {
	case "host":
		values = []string{r.Host}
	case "content-length":
		if v := r.Header.Values("Content-Length"); len(v) > 0 {
			values = v
		} else {
			values = []string{strconv.FormatInt(r.ContentLength, 10)}
		}
	default:
		values = r.Header.Values(name)
	}
	out := make([]string, len(values))
	for i, v := range values {
		out[i] = strings.Join(strings.Fields(v), " ")
	}
	return strings.Join(out, ",")
}

// canonicalQuery sorts the query parameters by name and value and
// encodes them with SigV4's URI encoding.
func canonicalQuery(q url.Values) string {
	var pairs []string
	for k, vs := range q {
		for _, v := range vs {
			pairs = append(pairs, uriEncode(k)+"="+uriEncode(v))
		}
	}
	slices.Sort(pairs)
	return strings.Join(pairs, "&")
}

// uriEncode percent-encodes every byte except the unreserved characters
// A-Z a-z 0-9 - _ . ~, with upper-case hex digits.
func uriEncode(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_', c == '.', c == '~':
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
		}
	}
	return b.String()
}
