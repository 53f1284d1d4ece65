package introspection

import (
	"errors"
	"time"
)

// ErrInsufficientScope is a token valid but lacking the route's scope or
// audience (RFC 6750 §3.1 insufficient_scope).
var ErrInsufficientScope = errors.New("token lacks a required scope or audience")

// ScopeError is ErrInsufficientScope naming the client, for logs.
type ScopeError struct{ ClientID string }

func (e *ScopeError) Error() string { return ErrInsufficientScope.Error() }

// Is makes errors.Is(err, ErrInsufficientScope) hold.
func (e *ScopeError) Is(target error) bool { return target == ErrInsufficientScope }

// ErrUnavailable is a token that cannot be checked now because the
// authorization server that must vouch for it is down, slow or answering
// nonsense. It is not the token's fault: clients should retry (HTTP 503),
// not fetch a new token.
var ErrUnavailable = errors.New("the token cannot be checked now")

// UnavailableError is ErrUnavailable with a hint of when to retry.
type UnavailableError struct {
	RetryAfter time.Duration // 0: no hint
	Err        error         // the cause, for logs
}

func (e *UnavailableError) Error() string {
	if e.Err == nil {
		return ErrUnavailable.Error()
	}
	return ErrUnavailable.Error() + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *UnavailableError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrUnavailable) hold.
func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }

// ErrThrottled is a token left unchecked because its sender has lately
// presented more unknown tokens than its budget allows: the remote server
// was not asked (HTTP 429). Tokens already checked keep working.
var ErrThrottled = errors.New("too many unknown tokens from this address")

// ThrottledError is ErrThrottled with when to retry.
type ThrottledError struct {
	RetryAfter time.Duration
}

func (e *ThrottledError) Error() string { return ErrThrottled.Error() }

// Is makes errors.Is(err, ErrThrottled) hold.
func (e *ThrottledError) Is(target error) bool { return target == ErrThrottled }
