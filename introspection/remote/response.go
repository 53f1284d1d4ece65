package remote

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/gatehousehq/gatehouse/clientstore"
	"github.com/gatehousehq/gatehouse/introspection"
)

// answer is an RFC 7662 §2.2 response as parsed, with Hydra's token_use
// and ext, and the `client` extension a Gatehouse sends.
type answer struct {
	Active    *bool                  `json:"active"`
	Scope     string                 `json:"scope"`
	ClientID  string                 `json:"client_id"`
	Username  string                 `json:"username"`
	TokenType string                 `json:"token_type"`
	TokenUse  string                 `json:"token_use"`
	Exp       *numericDate           `json:"exp"` // nil: absent; 0 is 1970, long expired
	Iat       numericDate            `json:"iat"`
	Sub       string                 `json:"sub"`
	Aud       introspection.Audience `json:"aud"`
	Iss       string                 `json:"iss"`
	Jti       string                 `json:"jti"`
	Ext       clientstore.Metadata   `json:"ext"`
	Cnf       json.RawMessage        `json:"cnf"`
	Client    *struct {
		Owner string `json:"owner"`
	} `json:"client"`
}

// parseResponse parses an introspection response body. Anything that is
// not a JSON object with a boolean `active` and well-typed members is
// ErrBadResponse: a broken server, not a verdict on the token.
func parseResponse(body []byte) (*answer, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return nil, fmt.Errorf("%w: not a JSON object", ErrBadResponse)
	}
	var a answer
	if err := json.Unmarshal(body, &a); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadResponse, err)
	}
	if a.Active == nil {
		return nil, fmt.Errorf("%w: no boolean \"active\"", ErrBadResponse)
	}
	return &a, nil
}

// numericDate is a JSON number of seconds since the epoch (RFC 7519 §2);
// fractions are dropped.
type numericDate int64

func (d *numericDate) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*d = 0
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return errors.New("a date must be a number")
	}
	if i, err := n.Int64(); err == nil {
		*d = numericDate(i)
		return nil
	}
	f, err := n.Float64()
	if err != nil || math.Abs(f) > 1<<53 {
		return errors.New("a date is out of range")
	}
	*d = numericDate(f)
	return nil
}

// audience accepts a string or an array of strings (RFC 7519 §4.1.3).
// judge turns a well-formed answer into a cache entry: an active access
// token this gateway accepts, or the reason it does not.
func (c *Client) judge(a *answer, now time.Time, bodySize int) *entry {
	size := bodySize + entryOverhead
	refuse := func(err error) *entry {
		return &entry{err: err, until: now.Add(c.cfg.NegativeTTL), size: size}
	}
	var exp int64 // 0: the token has no exp
	if a.Exp != nil {
		exp = max(int64(*a.Exp), 1) // a date of 0 or before is expired, not absent
	}
	switch {
	case !*a.Active:
		return refuse(ErrInactive)
	case a.TokenUse != "" && a.TokenUse != "access_token":
		return refuse(ErrNotAccessToken)
	case strings.EqualFold(a.TokenType, "DPoP") || (len(a.Cnf) > 0 && string(a.Cnf) != "null"):
		// Bound to a key the caller must prove (RFC 9449, RFC 8705):
		// accepting it as a plain bearer token would undo the binding.
		return refuse(ErrSenderConstrained)
	case exp != 0 && now.Unix() >= exp:
		return refuse(introspection.ErrExpired)
	case len(c.cfg.TrustedIssuers) > 0 && !slices.Contains(c.cfg.TrustedIssuers, a.Iss):
		return refuse(ErrUntrustedIssuer)
	case a.ClientID == "" && a.Sub == "":
		return refuse(ErrNoIdentity)
	}
	until := now.Add(c.cfg.CacheTTL)
	if exp != 0 && time.Unix(exp, 0).Before(until) {
		until = time.Unix(exp, 0)
	}
	rem := &introspection.Remote{Subject: a.Sub, Username: a.Username, JTI: a.Jti, Ext: a.Ext, Until: until}
	if a.Client != nil {
		rem.Owner = a.Client.Owner
	}
	return &entry{
		res: introspection.Result{
			Claims: introspection.Claims{
				ClientID:  a.ClientID,
				Scope:     a.Scope,
				Audience:  a.Aud,
				IssuedAt:  int64(a.Iat),
				ExpiresAt: exp,
			},
			Issuer: a.Iss,
			Remote: rem,
		},
		until: until,
		size:  size,
	}
}
