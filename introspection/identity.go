package introspection

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/gatehousehq/gatehouse/clientstore"
	"github.com/maypok86/otter/v2"
)

// DefaultIdentityCacheSize bounds the identity-JWT cache of one route.
const DefaultIdentityCacheSize = 10_000

// identityClaims is the payload of an identity JWT (README, "The identity
// JWT"). owner and ext are always present so backends see one shape.
type identityClaims struct {
	Iss      string   `json:"iss"`
	Sub      string   `json:"sub"`
	Aud      Audience `json:"aud,omitempty"`
	Iat      int64    `json:"iat"`
	Nbf      int64    `json:"nbf"`
	Exp      int64    `json:"exp"`
	Jti      string   `json:"jti"`
	ClientID string   `json:"client_id"`
	Scope    string   `json:"scope"`
	Owner    string   `json:"owner"`
	// Ext is a clientstore.Metadata (a remote result's) or the compact
	// JSON of a cached client's metadata (json.RawMessage).
	Ext any `json:"ext"`
}

// Audience is a JWT or introspection `aud` (RFC 7519 §4.1.3): it decodes
// from a string or an array, and marshals as a single string when it has
// one entry, as most JWT libraries expect, and as an array otherwise.
type Audience []string

func (a Audience) MarshalJSON() ([]byte, error) {
	if len(a) == 1 {
		return json.Marshal(a[0])
	}
	return json.Marshal([]string(a))
}

// UnmarshalJSON accepts either form.
func (a *Audience) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*a = Audience{s}
		return nil
	}
	var l []string
	if err := json.Unmarshal(b, &l); err != nil {
		return errors.New("aud must be a string or an array of strings")
	}
	*a = l
	return nil
}

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

// Introspector checks tokens that are not Gatehouse's own at another
// authorization server (package introspection/remote, RFC 7662).
type Introspector interface {
	// Introspect returns the Result of an active access token, with
	// Claims, Issuer and Remote (including Until) set and Client nil. A
	// token that is good for no request is an error wrapping
	// ErrInvalidToken; a server that cannot answer, one wrapping
	// ErrUnavailable. It must honour ctx and return within its own
	// timeout, and it must never log the token.
	Introspect(ctx context.Context, token string) (Result, error)
}

// Enrichment says whether and how a remote token's identity is enriched
// with the local client record of the same client_id: its operator-set
// metadata merges with the remote `ext`, its owner fills in a missing one.
type Enrichment string

// Enrichment modes.
const (
	// EnrichLocalWins merges, and the local record wins conflicts (the
	// default): the operator's word is final.
	EnrichLocalWins Enrichment = "local_wins"
	// EnrichRemoteWins merges, and the remote server wins conflicts.
	EnrichRemoteWins Enrichment = "remote_wins"
	// EnrichOff passes the remote identity through as it came.
	EnrichOff Enrichment = "off"
)

// Valid reports whether e is a known mode ("" counts as the default).
func (e Enrichment) Valid() bool {
	switch e {
	case "", EnrichLocalWins, EnrichRemoteWins, EnrichOff:
		return true
	}
	return false
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

// Identity is what a request with a valid token gets on a route: the
// checked token, the signed identity JWT and the placeholders. It is shared
// between requests: never modify it. Its Result has no Client, an identity
// keeps only the client's revision to know when it no longer holds, and
// no Token: the cache key is the token (or its hash). Header values made
// from it must be fresh slices per request — handlers after ours may edit
// a request's header values in place (request_header with a regex does).
type Identity struct {
	Result Result
	JWT    string // the identity JWT
	bearer string // "Bearer " + JWT, the same memory
	// Placeholder resolves gatehouse.client_id, gatehouse.owner,
	// gatehouse.scope and gatehouse.metadata.<path>.
	Placeholder func(key string) (any, bool)

	clientRev uint64 // revision of the local client it was made from; 0: none
	refreshAt int64  // reused only before this (Unix seconds)

	// For placeholders: the owner, and a local client's metadata as JSON,
	// decoded only when a placeholder first asks for it. One allocation,
	// not slices of the client's decoded copy, which would keep all of it.
	owner, mdJSON string
	mdOnce        sync.Once
	md            clientstore.Metadata
}

const bearerPrefix = "Bearer "

// Bearer is the identity JWT as an Authorization header value, without
// allocating.
func (g *Identity) Bearer() string { return g.bearer }

// Authorize checks token for this route: valid (else the token error, or
// ErrUnavailable when a remote server cannot answer), then the route
// policy on every request, cached or not (else ErrInsufficientScope). It
// signs an identity JWT only on a cache miss.
func (rt *Authorizer) Authorize(ctx context.Context, token string) (*Identity, error) {
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
			return rt.authorizeRemote(ctx, token, key, now)
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
func (rt *Authorizer) authorizeRemote(ctx context.Context, token, key string, now int64) (*Identity, error) {
	res, err := rt.remote.Introspect(ctx, token)
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

// revision is c's revision, 0 for no client.
func revision(c *clientstore.Client) uint64 {
	if c == nil {
		return 0
	}
	return c.Revision
}

func (rt *Authorizer) localRecord(clientID string) *clientstore.Client {
	if clientID == "" {
		return nil
	}
	c, _ := rt.auth.clients.Get(clientID)
	return c
}

// enrichResult merges the local client record of the same client_id into
// a remote result (operator-set metadata is trusted). A local
// record that is disabled refuses the token: the operator's switch holds
// whichever server issued it.
func (rt *Authorizer) enrichResult(r *Result) error {
	if rt.enrich == EnrichOff {
		return nil
	}
	c := rt.localRecord(r.Claims.ClientID)
	if c == nil {
		return nil
	}
	if c.Disabled {
		return ErrDisabled
	}
	rem := *r.Remote // the remote's answer may be shared: edit a copy
	if rt.enrich == EnrichRemoteWins {
		rem.Ext = mergeMetadata(c.Metadata, rem.Ext)
		rem.Owner = cmp.Or(rem.Owner, c.Owner)
	} else {
		rem.Ext = mergeMetadata(rem.Ext, c.Metadata)
		rem.Owner = cmp.Or(c.Owner, rem.Owner)
	}
	r.Remote = &rem
	r.Client = c
	return nil
}

// mergeMetadata returns base with over merged in: objects merge key by
// key, recursively; any other value of over replaces base's. Neither input
// is modified.
func mergeMetadata(base, over clientstore.Metadata) clientstore.Metadata {
	if len(over) == 0 {
		return base
	}
	if len(base) == 0 {
		return over
	}
	return clientstore.Metadata(mergeObjects(base, over))
}

func mergeObjects(base, over map[string]any) map[string]any {
	out := make(map[string]any, len(base)+len(over))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		bo, ok1 := asObject(out[k])
		oo, ok2 := asObject(v)
		if ok1 && ok2 {
			out[k] = mergeObjects(bo, oo)
		} else {
			out[k] = v
		}
	}
	return out
}

func asObject(v any) (map[string]any, bool) {
	switch o := v.(type) {
	case map[string]any:
		return o, true
	case clientstore.Metadata:
		return o, true
	}
	return nil, false
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

func (rt *Authorizer) allows(r *Result) bool {
	return r.HasScopes(rt.scopes) && (rt.needAud == "" || r.HasAudience(rt.needAud))
}

// sign signs a new identity JWT for r and caches the identity under key: the
// token of a local result, the SHA-256 of a remote one.
func (rt *Authorizer) sign(r *Result, now int64, key string) (*Identity, error) {
	exp := now + int64(rt.auth.cfg.IdentityTTL.Seconds())
	if r.Claims.ExpiresAt > 0 && r.Claims.ExpiresAt < exp {
		exp = r.Claims.ExpiresAt
	}
	aud := rt.audience
	if aud == nil {
		aud = r.Claims.Audience
	}
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return nil, err
	}
	var ext any = emptyExt
	var md json.RawMessage // a local client's metadata
	if r.Remote != nil {
		if r.Remote.Ext != nil {
			ext = r.Remote.Ext
		}
	} else {
		// The metadata as the cache keeps it: compact JSON, not decoded.
		var err error
		if md, err = r.Client.MetadataJSON(); err != nil {
			return nil, err
		}
		if md != nil {
			ext = md
		}
	}
	clientID, owner := r.ClientID(), r.Owner()
	payload, err := json.Marshal(identityClaims{
		Iss:      rt.auth.cfg.Issuer,
		Sub:      r.Subject(),
		Aud:      aud,
		Iat:      now,
		Nbf:      now,
		Exp:      exp,
		Jti:      base64.RawURLEncoding.EncodeToString(jti[:]),
		ClientID: clientID,
		Scope:    r.Claims.Scope,
		Owner:    owner,
		Ext:      ext,
	})
	if err != nil {
		return nil, err
	}
	jwt, err := rt.auth.signer.Sign(payload)
	if err != nil {
		return nil, err
	}
	g := &Identity{
		Result:    *r,
		clientRev: revision(r.Client),
		refreshAt: now + (exp-now)*3/4,
		bearer:    bearerPrefix + jwt,
	}
	g.JWT = g.bearer[len(bearerPrefix):]
	buf := owner + string(md)
	g.owner, g.mdJSON = buf[:len(owner)], buf[len(owner):]
	g.Result.Client, g.Result.Token = nil, "" // the revision is all an identity needs of the client; the key is the token
	if r.Remote != nil {
		// Never past the remote answer's own lifetime.
		g.refreshAt = min(g.refreshAt, r.Remote.Until.Unix())
	}
	g.Placeholder = g.placeholder
	if key != "" && now < g.refreshAt {
		rt.cache.put(key, g)
	}
	return g, nil
}

// emptyExt is the `ext` of an identity without metadata.
var emptyExt = json.RawMessage("{}")

// placeholder resolves the gatehouse.* placeholders of an identity.
func (g *Identity) placeholder(key string) (any, bool) {
	rest, ok := strings.CutPrefix(key, "gatehouse.")
	if !ok {
		return nil, false
	}
	switch rest {
	case "client_id":
		return g.Result.Claims.ClientID, true
	case "owner":
		return g.owner, true
	case "scope":
		return g.Result.Claims.Scope, true
	}
	if path, ok := strings.CutPrefix(rest, "metadata."); ok {
		return g.metadata().Lookup(path)
	}
	return nil, false
}

// metadata is the identity's metadata, decoded at most once and only when
// first asked for: placeholders need it only if a route's configuration
// names a gatehouse.metadata.<path>.
func (g *Identity) metadata() clientstore.Metadata {
	if g.Result.Remote != nil {
		return g.Result.Remote.Ext
	}
	g.mdOnce.Do(func() {
		if g.mdJSON != "" {
			_ = g.md.UnmarshalJSON([]byte(g.mdJSON)) // encoded from a map by the cache: it decodes
		}
	})
	return g.md
}

// identityCache holds identities by token (or by the SHA-256 of a remote
// token), at most size of them. otter decides which to keep (W-TinyLFU):
// a new entry displaces an old one only if its key was asked for more
// often, so a sweep of tokens used once does not push out the identities
// of tokens in use. Entries have no expiry of their own: Authorize serves a
// an identity only before its refreshAt, a fresh identity replaces a stale
// one under the same key, and stale identities of tokens no longer presented go
// as others come in. (An expiry would cost a clock read on every hit.)
type identityCache struct {
	c *otter.Cache[string, *Identity]
}

func newIdentityCache(size int) *identityCache {
	return &identityCache{c: otter.Must(&otter.Options[string, *Identity]{MaximumSize: size})}
}

// get returns the identity cached under key, nil if there is none.
func (c *identityCache) get(key string) *Identity {
	g, _ := c.c.GetIfPresent(key)
	return g
}

// put caches g under key.
func (c *identityCache) put(key string, g *Identity) {
	c.c.Set(key, g)
}
