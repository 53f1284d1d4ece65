package clientauth

import (
	"encoding/base64"
	"net/url"
	"strings"

	"github.com/gatehousehq/gatehouse/clientstore"
)

// Credentials are what one request presents to authenticate a client:
// exactly one method (RFC 6749 §2.3, RFC 7523 §2.2).
type Credentials struct {
	// Method is clientstore.AuthMethodBasic, AuthMethodPost or
	// AuthMethodPrivateKeyJWT.
	Method string
	// ClientID is the client the request names; for private_key_jwt it
	// may be empty (the assertion's iss names the client).
	ClientID string
	// Secret is the client secret of client_secret_basic and
	// client_secret_post.
	Secret string
	// Assertion and AssertionType are private_key_jwt's
	// client_assertion and client_assertion_type.
	Assertion, AssertionType string
}

// CheckQuery refuses client credentials in a request's query string, where
// they would end up in logs and browser histories (RFC 6749 §2.3.1): it
// returns ErrCredentialsInQuery for a client_secret or client_assertion
// there. Call it before reading the body.
func CheckQuery(query url.Values) error {
	if query.Has("client_secret") || query.Has("client_assertion") {
		return ErrCredentialsInQuery
	}
	return nil
}

// ReadCredentials reads the client credentials of a request from its
// Authorization header values and its form body (with parameters sent
// without a value already removed): HTTP Basic (client_secret_basic),
// client_id and client_secret in the form (client_secret_post), or a
// client assertion in the form (private_key_jwt). It returns
// ErrMalformedBasic, ErrMultipleMethods, ErrClientIDMismatch or
// ErrNoCredentials for a request that does not present exactly one
// well-formed set.
func ReadCredentials(authorization []string, form url.Values) (Credentials, error) {
	basicID, basicSecret, hasBasic, ok := parseBasic(authorization)
	withAssertion := hasAssertion(form)
	switch {
	case !ok:
		return Credentials{}, ErrMalformedBasic
	case hasBasic && (form.Has("client_secret") || withAssertion), form.Has("client_secret") && withAssertion:
		return Credentials{}, ErrMultipleMethods
	case hasBasic && form.Has("client_id") && form.Get("client_id") != basicID:
		return Credentials{}, ErrClientIDMismatch
	case hasBasic:
		return Credentials{Method: clientstore.AuthMethodBasic, ClientID: basicID, Secret: basicSecret}, nil
	case withAssertion:
		return Credentials{Method: clientstore.AuthMethodPrivateKeyJWT, ClientID: form.Get("client_id"),
			Assertion: form.Get("client_assertion"), AssertionType: form.Get("client_assertion_type")}, nil
	case form.Get("client_secret") != "":
		return Credentials{Method: clientstore.AuthMethodPost, ClientID: form.Get("client_id"), Secret: form.Get("client_secret")}, nil
	}
	return Credentials{}, ErrNoCredentials
}

// HasBodyCredentials reports whether form carries client credentials of
// its own: a client_secret (client_secret_post) or a client assertion
// (private_key_jwt).
func HasBodyCredentials(form url.Values) bool {
	return hasAssertion(form) || form.Get("client_secret") != ""
}

func hasAssertion(form url.Values) bool {
	return form.Has("client_assertion") || form.Has("client_assertion_type")
}

// parseBasic decodes HTTP Basic client credentials. Per RFC 6749 §2.3.1 the
// id and secret are form-urlencoded before base64, so both are decoded
// again. ok is false for a malformed or repeated Basic header; has is false
// when there is no Basic header at all.
func parseBasic(values []string) (id, secret string, has, ok bool) {
	var found string
	for _, v := range values {
		if len(v) >= 6 && strings.EqualFold(v[:6], "basic ") {
			if has {
				return "", "", true, false
			}
			found, has = strings.TrimLeft(v[6:], " "), true
		}
	}
	if !has {
		return "", "", false, true
	}
	raw, err := base64.StdEncoding.DecodeString(found)
	if err != nil {
		return "", "", true, false
	}
	rawID, rawSecret, found2 := strings.Cut(string(raw), ":")
	if !found2 {
		return "", "", true, false
	}
	if id, err = url.QueryUnescape(rawID); err != nil {
		return "", "", true, false
	}
	if secret, err = url.QueryUnescape(rawSecret); err != nil {
		return "", "", true, false
	}
	return id, secret, true, true
}
