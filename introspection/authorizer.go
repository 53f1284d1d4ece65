package introspection

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
)

// Authorizer authorizes requests for one protected route and hands out its
// identity JWTs. The outcome for a token — checked claims, signed identity
// JWT, header values, placeholders — is cached as an Identity, so a warm
// request neither decrypts, nor calls a remote server, nor signs: it looks
// the token up, then re-checks what can change (expiry, revocation, the
// client's revision) and the route policy.
//
// Identities for Gatehouse's own tokens are keyed by the token string.
// Identities for tokens checked by a remote server
// (AuthorizerConfig.Remote) are keyed by the token's SHA-256, never by the
// token itself, and are never reused past the remote answer's Until (so
// neither past the token's exp nor past the remote cache's TTL).
type Authorizer struct {
	auth     *Authority
	audience []string // aud of identity JWTs; nil: the token's own
	scopes   []string // policy: all required
	needAud  string   // policy: must be one of the token's audiences
	cache    *identityCache
	remote   Introspector
	enrich   Enrichment
}

// AuthorizerConfig is the policy and the token sources of a protected
// route.
type AuthorizerConfig struct {
	Scopes    []string // all required
	Audience  string   // must be one of the token's audiences; also the identity JWT's aud (empty: the token's own)
	CacheSize int      // bound of the identity cache (DefaultIdentityCacheSize if not positive)
	// Remote, if set, checks every token that is not recognizably
	// Gatehouse's own (prefix gat_, or a JWT with typ at+jwt and this
	// authority's kid); Gatehouse's own are still checked locally and are
	// never sent to the remote server.
	Remote Introspector
	Enrich Enrichment // for remote tokens; "" is EnrichLocalWins
}

// Introspector checks tokens that are not Gatehouse's own at another
// authorization server (package introspection/remote, RFC 7662).
type Introspector interface {
	// Introspect returns the Result of an active access token, with
	// Claims, Issuer and Remote (including Until) set and Client nil. A
	// token that is good for no request is an error wrapping
	// ErrInvalidToken; a server that cannot answer, one wrapping
	// ErrUnavailable; one left unchecked because addr, the client's
	// address, has presented too many unknown tokens lately, one wrapping
	// ErrThrottled. It must honour ctx and return within its own timeout,
	// and it must never log the token.
	Introspect(ctx context.Context, token, addr string) (Result, error)
}

// Authorizer returns the authorizer of a protected route with the given
// policy and token sources.
func (a *Authority) Authorizer(cfg AuthorizerConfig) *Authorizer {
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = DefaultIdentityCacheSize
	}
	if cfg.Enrich == "" {
		cfg.Enrich = EnrichLocalWins
	}
	rt := &Authorizer{auth: a, cache: newIdentityCache(cfg.CacheSize), scopes: cfg.Scopes, needAud: cfg.Audience,
		remote: cfg.Remote, enrich: cfg.Enrich}
	if cfg.Audience != "" {
		rt.audience = []string{cfg.Audience}
	}
	return rt
}

// Authorize checks token for this route: valid (else the token error, or
// ErrUnavailable when a remote server cannot answer), then the route
// policy on every request, cached or not (else ErrInsufficientScope). It
// signs an identity JWT only on a cache miss. It is AuthorizeFrom
// without a client address.
func (rt *Authorizer) Authorize(ctx context.Context, token string) (*Identity, error) {
	return rt.AuthorizeFrom(ctx, token, nil)
}

// AuthorizeFrom is Authorize for a request from the client address that
// from names, which a token checked remotely is charged to (see
// Introspector). from is asked only when the remote server must be
// consulted, so working the address out costs cached requests nothing;
// nil: no address.
func (rt *Authorizer) AuthorizeFrom(ctx context.Context, token string, from fmt.Stringer) (*Identity, error) {
	now := rt.auth.now().Unix()
	if g := rt.cache.get(token); g != nil && g.Result.Remote == nil && now < g.refreshAt && rt.current(g) {
		return rt.admit(g)
	}
	if rt.remote != nil {
		key := remoteKey(token)
		if g := rt.cache.get(key); g != nil && g.Result.Remote != nil && now < g.refreshAt && rt.currentRemote(g) {
			return rt.admit(g)
		}
		if !rt.owns(token) {
			return rt.authorizeRemote(ctx, token, key, from, now)
		}
	}
	res, err := rt.auth.Check(token)
	if err != nil {
		return nil, err
	}
	if !rt.allows(&res) {
		return nil, &ScopeError{ClientID: res.Client.ID}
	}
	return rt.sign(&res, now, token)
}

// admit applies the route policy to a cached identity.
func (rt *Authorizer) admit(g *Identity) (*Identity, error) {
	if !rt.allows(&g.Result) {
		return nil, &ScopeError{ClientID: g.Result.ClientID()}
	}
	return g, nil
}

// authorizeRemote has the remote server check token, enriches the result
// and applies the policy.
func (rt *Authorizer) authorizeRemote(ctx context.Context, token, key string, from fmt.Stringer, now int64) (*Identity, error) {
	var addr string
	if from != nil {
		addr = from.String()
	}
	res, err := rt.remote.Introspect(ctx, token, addr)
	if err != nil {
		return nil, err
	}
	if res.Remote == nil {
		res.Remote = &Remote{} // a result without Until is never reused
	}
	res.Client = nil
	if err := rt.enrichResult(&res); err != nil {
		return nil, err
	}
	if !rt.allows(&res) {
		return nil, &ScopeError{ClientID: res.ClientID()}
	}
	return rt.sign(&res, now, key)
}

func (rt *Authorizer) allows(r *Result) bool {
	return r.HasScopes(rt.scopes) && (rt.needAud == "" || r.HasAudience(rt.needAud))
}

// current reports whether a cached identity still stands: its client is the
// one it was made for, unchanged (same revision), and its token was not
// revoked since.
func (rt *Authorizer) current(g *Identity) bool {
	rev := rt.localRevision(g.Result.Claims.ClientID)
	return rev != 0 && rev == g.clientRev && !rt.auth.revocations.Has(g.Result.Claims.ID)
}

// currentRemote reports whether a cached remote identity was enriched with
// the local record that exists now (or with none, and none exists), so a
// local metadata change, a new, disabled or deleted record shows on the
// next request.
func (rt *Authorizer) currentRemote(g *Identity) bool {
	return rt.enrich == EnrichOff || rt.localRevision(g.Result.Claims.ClientID) == g.clientRev
}

// localRevision is the revision of the local client clientID, 0 if there
// is none (stores never give a client revision 0).
func (rt *Authorizer) localRevision(clientID string) uint64 {
	rev, _ := rt.auth.clients.Revision(clientID)
	return rev
}

// owns reports whether token is recognizably one of this authority's: an
// opaque token with Gatehouse's prefix, or a JWT access token (typ at+jwt)
// under this authority's key id. Only those are checked locally when the
// route also has a remote server, and they are never sent to it.
func (rt *Authorizer) owns(token string) bool {
	if strings.HasPrefix(token, TokenPrefix) {
		return true
	}
	head, rest, ok := strings.Cut(token, ".")
	if !ok || strings.Count(rest, ".") != 1 || len(head) > 1024 {
		return false
	}
	raw, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return false
	}
	var h struct {
		Typ string `json:"typ"`
		Kid string `json:"kid"`
	}
	if json.Unmarshal(raw, &h) != nil {
		return false
	}
	typ := strings.TrimPrefix(strings.ToLower(h.Typ), "application/")
	// Any key of our ring, not just the current one: after a rotation our
	// older JWT access tokens are still ours and must never go upstream.
	return typ == AccessTokenType && rt.auth.signer.HasKey(h.Kid)
}

// remoteKey is the cache key of a remote token: its SHA-256, so that the
// token itself is never kept as a key.
func remoteKey(token string) string {
	sum := sha256.Sum256([]byte(token))
	return string(sum[:])
}
