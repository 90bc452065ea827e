package restclient

import (
	"context"
	"fmt"
	"net/http"

	"github.com/openkes/openkes/keystore"
)

// TLS is the "tls" subsection of a REST key store's config section.
type TLS struct {
	// CA is a PEM file or a directory of PEM files of CAs to trust
	// besides the system roots.
	CA string `yaml:"ca"`
}

// ResponseError is an error answer of a REST service.
type ResponseError struct {
	StatusCode int
	Message    string // see NewResponseError
}

func (e *ResponseError) Error() string {
	s := fmt.Sprintf("%d %s", e.StatusCode, http.StatusText(e.StatusCode))
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// NewResponseError returns the error of the answer resp, whose Message
// is [Message] of the body and keys.
func NewResponseError(resp *Response, keys ...string) *ResponseError {
	return &ResponseError{StatusCode: resp.Status, Message: Message(resp.Body, keys...)}
}

// Open is the common start of a REST key store's Connect: it fails if
// ctx is done or conf is invalid (see [keystore.Prepare]), and returns
// [NewHTTPClient] of endpoint and caPath. Its errors start with name,
// e.g. "gemalto: ".
func Open(ctx context.Context, name string, conf interface{ Validate() error }, endpoint, caPath string) (base string, client *http.Client, err error) {
	if err := keystore.Prepare(ctx, name, conf); err != nil {
		return "", nil, err
	}
	base, client, err = NewHTTPClient(endpoint, caPath)
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", name, err)
	}
	return base, client, nil
}

// Do sends the request that req builds for the session's token with
// client. If the service rejects the token with 401 (it expired early or
// was revoked), Do invalidates it, logs in again and repeats the request
// once.
func (s *Session) Do(ctx context.Context, client *http.Client, req func(tok Token) *Request) (*Response, error) {
	for retry := 0; ; retry++ {
		tok, err := s.Token(ctx)
		if err != nil {
			return nil, err
		}
		resp, err := Do(ctx, client, req(tok))
		if err != nil {
			return nil, err
		}
		if resp.Status == http.StatusUnauthorized && retry == 0 {
			s.Invalidate(tok)
			continue
		}
		return resp, nil
	}
}

// Outcomes says what the status codes of an answer mean to an operation:
// a status that maps to nil is success, one that maps to an error is that
// error; any other status is a [*ResponseError].
type Outcomes map[int]error

// The outcomes shared by the REST key stores.
var (
	// Created: 200 and 201 are success, 409 is keystore.ErrExists.
	Created = Outcomes{http.StatusOK: nil, http.StatusCreated: nil, http.StatusConflict: keystore.ErrExists}
	// Found: 200 is success, 404 is keystore.ErrNotFound.
	Found = Outcomes{http.StatusOK: nil, http.StatusNotFound: keystore.ErrNotFound}
	// Deleted: 200 and 204 are success, 404 is keystore.ErrNotFound.
	Deleted = Outcomes{http.StatusOK: nil, http.StatusNoContent: nil, http.StatusNotFound: keystore.ErrNotFound}
	// OK: only 200 is success.
	OK = Outcomes{http.StatusOK: nil}
)

// Check returns err if it is not nil, and else what resp's status means
// by outcomes; the message of a [*ResponseError] is [Message] of the body
// and keys.
func Check(resp *Response, err error, outcomes Outcomes, keys ...string) error {
	if err != nil {
		return err
	}
	if e, ok := outcomes[resp.Status]; ok {
		return e
	}
	return NewResponseError(resp, keys...)
}
