package clientauth

import (
	"context"
	"errors"
	"fmt"

	"github.com/gatehousehq/gatehouse/clientstore"
)

// Authenticator authenticates the clients of a Cache at the token,
// introspection and revocation endpoints: secrets against the cache's
// hashes, assertions with an Assertions verifier, and repeated failures
// slowed down by Limits.
type Authenticator struct {
	clients    *clientstore.Cache
	assertions *Assertions
	limits     *Limits
}

// NewAuthenticator returns an authenticator of the clients in clients.
// limits may be shared with other authenticators (e.g. across config
// reloads), so that failures count wherever they happen.
func NewAuthenticator(clients *clientstore.Cache, assertions *Assertions, limits *Limits) *Authenticator {
	return &Authenticator{clients: clients, assertions: assertions, limits: limits}
}

// Authenticate checks credentials read from a request that came from addr
// (the caller's address; an IPv6 address best stands for its /64). While
// addr, or the client_id guessed from addr, is blocked it returns a
// *LimitedError without looking at the credentials. Otherwise a wrong
// assertion_type is ErrAssertionType; an unknown client or a wrong secret
// is ErrFailed, a refused assertion an error wrapping ErrAssertion, an
// assertion that cannot be verified now one wrapping ErrUnavailable, and
// each of these counts as a failure of addr and of the client_id from
// addr. Right credentials clear the client_id's failures from addr; a
// client that is disabled is then ErrDisabled, one registered for another
// method a *MethodError, both returned with the client.
func (a *Authenticator) Authenticate(ctx context.Context, c Credentials, addr string) (*clientstore.Client, error) {
	if c.Method == "" {
		return nil, ErrNoCredentials
	}
	if err := a.limits.allow(addr, c.ClientID); err != nil {
		return nil, err
	}
	var client *clientstore.Client
	if c.Method == clientstore.AuthMethodPrivateKeyJWT {
		if c.AssertionType != ClientAssertionType {
			return nil, ErrAssertionType
		}
		cl, err := a.assertions.Verify(ctx, c.Assertion, c.ClientID)
		if err != nil {
			a.limits.fail(addr, c.ClientID)
			if !errors.Is(err, ErrAssertion) {
				return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
			}
			return nil, err
		}
		client = cl
	} else {
		cl, ok := a.clients.Authenticate(c.ClientID, c.Secret)
		if !ok {
			a.limits.fail(addr, c.ClientID)
			return nil, ErrFailed
		}
		client = cl
	}
	a.limits.reset(addr, client.ID)
	switch {
	case client.Disabled:
		return client, ErrDisabled
	case client.TokenEndpointAuthMethod != c.Method:
		return client, &MethodError{Registered: client.TokenEndpointAuthMethod}
	}
	return client, nil
}
