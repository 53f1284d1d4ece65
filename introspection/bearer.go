package introspection

import (
	"errors"
	"strings"
)

// Errors of ParseBearer.
var (
	ErrNoCredentials  = errors.New("no credentials")
	ErrBadCredentials = errors.New("credentials are not a well-formed Bearer token")
)

// ParseBearer extracts the token from an Authorization header value of the
// form `Bearer <b64token>` (RFC 6750 §2.1; the scheme is case-insensitive
// per RFC 9110 §11.1). An empty value is ErrNoCredentials; anything else
// that is not a single bounded b64token is ErrBadCredentials.
func ParseBearer(h string) (string, error) {
	if h == "" {
		return "", ErrNoCredentials
	}
	const scheme = "bearer"
	if len(h) < len(scheme)+2 || !strings.EqualFold(h[:len(scheme)], scheme) || h[len(scheme)] != ' ' {
		return "", ErrBadCredentials
	}
	tok := h[len(scheme)+1:]
	for len(tok) > 0 && tok[0] == ' ' {
		tok = tok[1:]
	}
	if tok == "" || len(tok) > MaxTokenLength {
		return "", ErrBadCredentials
	}
	// b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
	i := 0
	for i < len(tok) && isB64TokenChar(tok[i]) {
		i++
	}
	if i == 0 {
		return "", ErrBadCredentials
	}
	for i < len(tok) && tok[i] == '=' {
		i++
	}
	if i != len(tok) {
		return "", ErrBadCredentials
	}
	return tok, nil
}

func isB64TokenChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/'
}
