package introspection

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/gatehousehq/gatehouse/clientstore"
)

// Defaults of Config.
const (
	DefaultTokenTTL    = time.Hour
	DefaultIdentityTTL = 5 * time.Minute
)

// Errors of token requests, mapped to RFC 6749 §5.2 codes at the edge.
var (
	ErrInvalidScope  = errors.New("requested scope exceeds the client's scope")
	ErrInvalidTarget = errors.New("requested audience is not allowed for this client")
	// ErrTokenTooLarge: the granted scope and audiences would make a token
	// longer than MaxTokenLength, which no check would accept.
	ErrTokenTooLarge = errors.New("granted scope and audience make the token too large")
)

// Config is what one configuration of the gateway decides about tokens.
type Config struct {
	Issuer      string        // iss of every token and identity JWT
	TokenTTL    time.Duration // access-token lifetime
	IdentityTTL time.Duration // identity-JWT lifetime (never past the token's exp)
	// AccessTokenStrategy is the token format for clients that do not pick
	// one: "opaque" (default) or "jwt" (RFC 9068).
	AccessTokenStrategy string
}

// Authority mints and checks access tokens for the clients of a Cache.
// Checks touch memory only: the client cache, the sealing keys and the
// revocation set.
type Authority struct {
	cfg         Config
	clients     *clientstore.Cache
	sealer      *Sealer
	signer      *Signer
	revocations *Revocations
	now         func() time.Time
}

// NewAuthority ties the parts together. Zero TTLs take the defaults.
func NewAuthority(cfg Config, clients *clientstore.Cache, sealer *Sealer, signer *Signer, rev *Revocations) *Authority {
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = DefaultTokenTTL
	}
	if cfg.IdentityTTL <= 0 {
		cfg.IdentityTTL = DefaultIdentityTTL
	}
	return &Authority{cfg: cfg, clients: clients, sealer: sealer, signer: signer, revocations: rev, now: time.Now}
}

// Config returns the authority's configuration, defaults filled in.
func (a *Authority) Config() Config { return a.cfg }

// Clients is the client cache the authority serves.
func (a *Authority) Clients() *clientstore.Cache { return a.clients }

// Revocations is the set of individually revoked tokens.
func (a *Authority) Revocations() *Revocations { return a.revocations }

// Signer is the identity-JWT signer.
func (a *Authority) Signer() *Signer { return a.signer }

// Token is a freshly minted access token.
type Token struct {
	AccessToken string
	ExpiresIn   int64 // seconds
	Scope       string
	Audience    []string
}

// Issue mints an access token for an authenticated client. scope is the
// requested scope (empty: all of the client's scopes); audience the
// requested audiences (empty: all of the client's audiences).
func (a *Authority) Issue(client *clientstore.Client, scope string, audience []string) (Token, error) {
	return a.issueAt(a.now(), client, scope, audience)
}

func (a *Authority) issueAt(now time.Time, client *clientstore.Client, scope string, audience []string) (Token, error) {
	granted, err := GrantScope(client, scope)
	if err != nil {
		return Token{}, err
	}
	aud, err := GrantAudience(client, audience)
	if err != nil {
		return Token{}, err
	}
	c := Claims{
		ClientID:   client.ID,
		Generation: client.Generation,
		Scope:      granted,
		Audience:   aud,
		IssuedAt:   now.Unix(),
		ExpiresAt:  now.Add(a.cfg.TokenTTL).Unix(),
	}
	var tok string
	if a.strategy(client) == clientstore.TokenStrategyJWT {
		tok, err = a.signJWT(&c)
	} else {
		tok, err = a.sealer.Seal(&c)
	}
	if err != nil {
		return Token{}, err
	}
	if len(tok) > MaxTokenLength {
		return Token{}, ErrTokenTooLarge
	}
	return Token{AccessToken: tok, ExpiresIn: c.ExpiresAt - c.IssuedAt, Scope: granted, Audience: aud}, nil
}

// strategy is the access-token format for client.
func (a *Authority) strategy(client *clientstore.Client) string {
	if client.AccessTokenStrategy != "" {
		return client.AccessTokenStrategy
	}
	return a.cfg.AccessTokenStrategy
}

// open reads a token of either format, checking integrity only.
func (a *Authority) open(token string) (Claims, error) {
	if strings.HasPrefix(token, TokenPrefix) {
		return a.sealer.Open(token)
	}
	if strings.Count(token, ".") == 2 && len(token) <= MaxTokenLength {
		return a.openJWT(token)
	}
	return Claims{}, ErrMalformed
}

// GrantScope down-scopes: every requested scope token must be one of the
// client's. An empty request grants all of the client's scopes.
func GrantScope(client *clientstore.Client, requested string) (string, error) {
	fields := clientstore.SplitScope(requested)
	if len(fields) == 0 {
		return client.Scope, nil
	}
	allowed := client.Scopes()
	for _, s := range fields {
		if !clientstore.ValidScopeToken(s) || !slices.Contains(allowed, s) {
			return "", ErrInvalidScope
		}
	}
	return strings.Join(dedupe(fields), " "), nil
}

// GrantAudience restricts the token's audience to what was requested, each
// entry one of the client's allowed audiences. An empty request grants all
// of them.
func GrantAudience(client *clientstore.Client, requested []string) ([]string, error) {
	if len(requested) == 0 {
		return client.Audience, nil
	}
	for _, a := range requested {
		if !slices.Contains(client.Audience, a) {
			return nil, ErrInvalidTarget
		}
	}
	return dedupe(requested), nil
}

func dedupe(list []string) []string {
	out := list[:0:0]
	for _, s := range list {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// Check verifies an access token against the current state: integrity,
// expiry, revocation, and that its client still exists, is enabled and has
// not invalidated its tokens since. It reads memory only.
func (a *Authority) Check(token string) (Result, error) {
	c, err := a.open(token)
	if err != nil {
		return Result{}, err
	}
	if a.now().Unix() >= c.ExpiresAt {
		return Result{}, ErrExpired
	}
	if a.revocations.Has(c.ID) {
		return Result{}, ErrRevoked
	}
	client, ok := a.clients.Get(c.ClientID)
	switch {
	case !ok:
		return Result{}, ErrUnknownClient
	case client.Disabled:
		return Result{}, ErrDisabled
	case client.Generation != c.Generation:
		return Result{}, ErrRevoked
	}
	return Result{Token: token, Claims: c, Client: client, Issuer: a.cfg.Issuer}, nil
}

// ErrNotTokenOwner is a revocation request for a live token that was
// issued to another client (RFC 7009 §2.1: refused, and the client told).
var ErrNotTokenOwner = errors.New("the token was issued to another client")

// Revoke revokes one token (RFC 7009) on behalf of a client: only a token
// that client holds is revoked. A live token of another client is refused
// with ErrNotTokenOwner and stays valid (§2.1); an invalid, unknown or
// expired token is ignored (§2.2: nothing to revoke).
func (a *Authority) Revoke(ctx context.Context, client *clientstore.Client, token string) error {
	c, err := a.open(token)
	if err != nil || a.now().Unix() >= c.ExpiresAt {
		return nil
	}
	if c.ClientID != client.ID {
		if _, err := a.Check(token); err == nil {
			return ErrNotTokenOwner
		}
		return nil // not a live token: nothing to refuse
	}
	return a.revocations.Revoke(ctx, c)
}
