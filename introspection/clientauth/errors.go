package clientauth

import (
	"errors"
	"time"
)

// Refusals of client authentication. The edge maps each to an RFC 6749
// §5.2 response; only ErrAssertion's text says why, and that is for logs
// only (telling the caller would reveal which client ids exist).
var (
	// ErrCredentialsInQuery: a client_secret or client_assertion in the
	// query string.
	ErrCredentialsInQuery = errors.New("credentials must not be sent in the query string")
	// ErrMalformedBasic: a malformed or repeated Basic Authorization
	// header.
	ErrMalformedBasic = errors.New("malformed Basic credentials")
	// ErrMultipleMethods: more than one way of authenticating in one
	// request.
	ErrMultipleMethods = errors.New("more than one client authentication method")
	// ErrClientIDMismatch: a client_id in the body other than the Basic
	// credentials'.
	ErrClientIDMismatch = errors.New("client_id in the body differs from the Basic credentials")
	// ErrNoCredentials: no client authentication at all.
	ErrNoCredentials = errors.New("client authentication is required")
	// ErrAssertionType: a client_assertion_type other than
	// ClientAssertionType.
	ErrAssertionType = errors.New("client_assertion_type must be " + ClientAssertionType)
	// ErrFailed: an unknown client_id or a wrong secret. A refused
	// assertion is an error wrapping ErrAssertion instead.
	ErrFailed = errors.New("client authentication failed")
	// ErrDisabled: the credentials are right, the client is disabled.
	ErrDisabled = errors.New("the client is disabled")
	// ErrUnavailable: an assertion could not be verified now (its replay
	// guard's store failed, the request went away). Not the client's
	// fault: it may retry.
	ErrUnavailable = errors.New("the client assertion could not be verified")
)

// MethodError is a client that authenticated with the right credentials
// but another method than the one it is registered for.
type MethodError struct {
	Registered string // the client's token_endpoint_auth_method
}

func (e *MethodError) Error() string { return "the client is registered for " + e.Registered }

// LimitedError is an attempt refused, without checking its credentials,
// because its address, or its client_id from that address, failed too
// often (see Limits).
type LimitedError struct {
	RetryAfter time.Duration // how long the block still lasts
}

func (e *LimitedError) Error() string {
	return "too many failed authentication attempts; retry later"
}
