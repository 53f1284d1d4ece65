package introspection

import (
	"crypto/rand"
	"encoding/json"
	"strconv"
)

// jwtAccessClaims are the claims of an RFC 9068 access token. `gen` is the
// client's generation at issuance, so disabling a client or rotating its
// secret revokes its JWT access tokens like its opaque ones.
type jwtAccessClaims struct {
	Iss      string     `json:"iss"`
	Sub      string     `json:"sub"`
	Aud      Audience   `json:"aud"`
	Exp      int64      `json:"exp"`
	Iat      int64      `json:"iat"`
	Nbf      int64      `json:"nbf"`
	Jti      string     `json:"jti"`
	ClientID string     `json:"client_id"`
	Scope    string     `json:"scope,omitempty"`
	Gen      generation `json:"gen"`
}

// generation is a client's generation in a JWT, written as a decimal
// string: generations take 63 bits, and a JSON number above 2^53 is
// rounded by JavaScript and every other reader of IEEE 754 doubles
// (RFC 7493 §2.2). A number, as tokens minted before carried, still
// reads.
type generation uint64

func (g generation) MarshalJSON() ([]byte, error) {
	return json.Marshal(strconv.FormatUint(uint64(g), 10))
}

func (g *generation) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := strconv.ParseUint(s, 10, 64)
		*g = generation(v)
		return err
	}
	var n uint64
	err := json.Unmarshal(b, &n)
	*g = generation(n)
	return err
}

// signJWT mints an RFC 9068 access token (typ at+jwt, sub = client_id for
// client_credentials) for c, setting c.ID.
func (a *Authority) signJWT(c *Claims) (string, error) {
	if _, err := rand.Read(c.ID[:]); err != nil {
		return "", err
	}
	aud := Audience(c.Audience)
	if len(aud) == 0 {
		// RFC 9068 §2.2 requires aud: a client without audiences gets a
		// token for this authorization server itself.
		aud = Audience{a.cfg.Issuer}
	}
	payload, err := json.Marshal(jwtAccessClaims{
		Iss: a.cfg.Issuer, Sub: c.ClientID, Aud: aud,
		Exp: c.ExpiresAt, Iat: c.IssuedAt, Nbf: c.IssuedAt,
		Jti: c.ID.String(), ClientID: c.ClientID, Scope: c.Scope, Gen: generation(c.Generation),
	})
	if err != nil {
		return "", err
	}
	return a.signer.SignAccessToken(payload)
}

// openJWT verifies a JWT access token minted by this authority: its own
// key and algorithm, typ at+jwt (so an identity JWT is never accepted as
// an access token), its own issuer.
func (a *Authority) openJWT(token string) (Claims, error) {
	payload, err := a.signer.Verify(token, AccessTokenType)
	if err != nil {
		return Claims{}, err
	}
	var jc jwtAccessClaims
	if err := json.Unmarshal(payload, &jc); err != nil {
		return Claims{}, ErrMalformed
	}
	id, ok := ParseTokenID(jc.Jti)
	if !ok || jc.Iss != a.cfg.Issuer || jc.ClientID == "" || jc.Sub != jc.ClientID {
		return Claims{}, ErrMalformed
	}
	return Claims{
		ClientID:   jc.ClientID,
		Generation: uint64(jc.Gen),
		Scope:      jc.Scope,
		Audience:   jc.Aud,
		IssuedAt:   jc.Iat,
		ExpiresAt:  jc.Exp,
		ID:         id,
	}, nil
}
