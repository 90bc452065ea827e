package azure

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/openkes/openkes/keystore"
)

// Inner error codes of Key Vault that the store acts on.
const (
	codeDeletedButRecoverable = "ObjectIsDeletedButRecoverable"
	codeBeingDeleted          = "ObjectIsBeingDeleted"
	codeForbiddenByPolicy     = "ForbiddenByPolicy"
)

// ResponseError is an error answer of Key Vault: its status, error code,
// inner error code and message, from the body
// {"error":{"code":..,"message":..,"innererror":{"code":..}}}. It is a
// one-line summary of the SDK's *azcore.ResponseError, which it wraps.
type ResponseError struct {
	Status    int
	Code      string
	InnerCode string
	Message   string

	err error
}

func (e *ResponseError) Error() string {
	s := fmt.Sprintf("%d %s", e.Status, http.StatusText(e.Status))
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.InnerCode != "" {
		s += "/" + e.InnerCode
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

func (e *ResponseError) Unwrap() error { return e.err }

// asResponseError returns the Key Vault answer in err, if any.
func asResponseError(err error) (*ResponseError, bool) {
	var re *ResponseError
	if errors.As(err, &re) {
		return re, true
	}
	var ae *azcore.ResponseError
	if !errors.As(err, &ae) {
		return nil, false
	}
	re = &ResponseError{Status: ae.StatusCode, Code: ae.ErrorCode, err: ae}
	if ae.RawResponse != nil {
		if body, err := runtime.Payload(ae.RawResponse); err == nil {
			var v struct {
				Error struct {
					Code       string `json:"code"`
					Message    string `json:"message"`
					InnerError *struct {
						Code string `json:"code"`
					} `json:"innererror"`
				} `json:"error"`
			}
			if json.Unmarshal(body, &v) == nil {
				if v.Error.Code != "" {
					re.Code = v.Error.Code
				}
				re.Message = truncate(v.Error.Message, 300)
				if v.Error.InnerError != nil {
					re.InnerCode = v.Error.InnerError.Code
				}
			}
		}
	}
	return re, true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// isStatus reports whether err is a Key Vault answer with status.
func isStatus(err error, status int) bool {
	re, ok := asResponseError(err)
	return ok && re.Status == status
}

// hasInnerCode reports whether err is a Key Vault answer whose inner
// error code is code.
func hasInnerCode(err error, code string) bool {
	re, ok := asResponseError(err)
	return ok && re.InnerCode == code
}

// unavailable reports whether a Key Vault status means the service is
// out of reach for now rather than refusing the request: throttling
// (429) and the gateway and availability errors.
func unavailable(status int) bool {
	switch status {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// translate turns an error of the SDK into the store's error: Key Vault
// answers become *ResponseError, and network failures, timeouts,
// throttling, unavailability and an unreachable identity provider become
// *keystore.UnreachableError wrapping it. The caller's own cancellation
// is returned as it is. The result never holds a token or secret: the
// SDK's errors carry URLs, status, codes and messages only.
func translate(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return err
	}
	if re, ok := asResponseError(err); ok {
		if unavailable(re.Status) {
			return &keystore.UnreachableError{Err: re}
		}
		return re
	}
	var le *loginError
	if errors.As(err, &le) {
		if le.status == 0 || le.status >= 500 || unavailable(le.status) {
			return &keystore.UnreachableError{Err: le}
		}
		return le
	}
	var af *azidentity.AuthenticationFailedError
	if errors.As(err, &af) {
		le := &loginError{err: err}
		if af.RawResponse != nil {
			le.status = af.RawResponse.StatusCode
		}
		return translate(ctx, le)
	}
	// Everything else is a failure to get an answer at all: a refused or
	// dropped connection, a TLS failure, a timeout of the call.
	return &keystore.UnreachableError{Err: err}
}
