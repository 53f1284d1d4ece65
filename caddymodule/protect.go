package caddymodule

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/gatehousehq/gatehouse/clientstore"
	"github.com/gatehousehq/gatehouse/introspection"
	"github.com/gatehousehq/gatehouse/introspection/remote"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func init() {
	caddy.RegisterModule(Protect{})
}

// DefaultIdentityHeader is the request header that carries the identity JWT
// to the backend unless configured otherwise.
const DefaultIdentityHeader = "X-Identity-Token"

// Protect is the `gatehouse_protect` handler. It admits only requests that
// carry a valid access token with the route's scopes and audience, and
// hands the backend a signed identity JWT in a header. Tokens are
// Gatehouse's own, checked in memory, or, with Introspect, also those of
// another authorization server, checked with RFC 7662 introspection.
//
// It sets these placeholders for later handlers: {gatehouse.client_id},
// {gatehouse.owner}, {gatehouse.scope} and {gatehouse.metadata.<path>}.
type Protect struct {
	// Scopes the token must all have been granted.
	Scopes []string `json:"scopes,omitempty"`

	// Audience the token must have been issued for; also the `aud` of the
	// identity JWT. Empty: any audience, and the identity JWT carries the
	// token's own audiences.
	Audience string `json:"audience,omitempty"`

	// Header that carries the identity JWT to the backend. Default:
	// X-Identity-Token. With "Authorization", the JWT replaces the access
	// token there as `Bearer <jwt>`.
	Header string `json:"header,omitempty"`

	// Optional lets requests without any credentials through as anonymous
	// (spoofed identity headers are still removed, and no identity is
	// injected). A request that does carry a token must carry a valid one.
	Optional bool `json:"optional,omitempty"`

	// Introspect also admits access tokens of another authorization
	// server (Hydra, Keycloak, …), checked at its RFC 7662 introspection
	// endpoint. Gatehouse's own tokens are still checked locally and are
	// never sent there.
	Introspect *Introspect `json:"introspect,omitempty"`

	// Enrich says how the identity of a token checked by Introspect is
	// enriched with the local client record of the same client_id, if
	// one exists: "local_wins" (default: the record's metadata merges
	// with the remote `ext` and wins conflicts, its owner wins),
	// "remote_wins" (merged, the remote server wins; the record's owner
	// only fills in a missing one) or "off". A disabled local record
	// refuses the token unless this is "off".
	Enrich string `json:"enrich,omitempty"`

	header        string // canonical
	authorization bool
	challenge     string // WWW-Authenticate value of a 403
	route         *introspection.Authorizer
	logger        *zap.Logger
	metrics       *requestMetrics
	poolKey       string // of the shared introspection client, if any
}

// Introspect configures RFC 7662 introspection of tokens from another
// authorization server. Answers are cached by the token's SHA-256 (never
// the token), for at most CacheTTL and never past the token's exp; one
// call per token is in flight at a time; an unreachable, slow or broken
// server makes requests fail with 503 and Retry-After, and after
// BreakerFailures consecutive failures no call is made for
// BreakerCooldown. Routes with identical settings share one client and
// cache, across config reloads too; each still applies its own scope and
// audience to every request.
type Introspect struct {
	// URL of the introspection endpoint, e.g.
	// https://hydra-admin:4445/admin/oauth2/introspect. TLS certificates
	// are verified against the system roots. Placeholders such as
	// {env.HYDRA_URL} are resolved at provisioning.
	URL string `json:"url,omitempty"`

	// Credentials Gatehouse authenticates with (RFC 7662 §2.1), sent as
	// AuthMethod says. Placeholders are resolved, so secrets can come
	// from {env.…}. Optional.
	ClientID     string `json:"client_id,omitempty"`
	ClientSecret string `json:"client_secret,omitempty"`

	// How the client credentials are sent: "client_secret_basic"
	// (default; HTTP Basic, form-urlencoded per RFC 6749 §2.3.1) or
	// "client_secret_post" (in the form).
	AuthMethod string `json:"auth_method,omitempty"`

	// A bearer token sent as `Authorization: Bearer …`, instead of client
	// credentials. Placeholders are resolved.
	Bearer string `json:"bearer,omitempty"`

	// token_type_hint sent with every call, e.g. "access_token". Default:
	// none.
	TokenTypeHint string `json:"token_type_hint,omitempty"`

	// How long an active answer is reused; never past the token's exp.
	// Default: 30s.
	CacheTTL caddy.Duration `json:"cache_ttl,omitempty"`

	// How long a refusal (inactive, expired, untrusted issuer, …) is
	// reused. Default: 5s.
	NegativeTTL caddy.Duration `json:"negative_ttl,omitempty"`

	// Bound of one call, connecting included. Default: 2s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	// If set, a token is accepted only if the answer's `iss` is exactly
	// one of these.
	TrustedIssuers []string `json:"trusted_issuers,omitempty"`

	// Bounds of the answer cache: entries (default 10000) and
	// approximate bytes (default 16 MiB).
	CacheEntries int   `json:"cache_entries,omitempty"`
	CacheBytes   int64 `json:"cache_bytes,omitempty"`

	// Consecutive failed calls that open the circuit breaker (default 5),
	// and how long it then stays open before one probe call (default
	// 10s).
	BreakerFailures int            `json:"breaker_failures,omitempty"`
	BreakerCooldown caddy.Duration `json:"breaker_cooldown,omitempty"`

	// Calls in flight to the server at most (default 16; -1: no bound),
	// and half of them at most for calls started by one client address.
	// A call that finds no slot waits up to QueueTimeout (default 100ms),
	// behind at most QueueSize others (default 64) for a global slot;
	// otherwise its request gets 503 with Retry-After at once, without a
	// call and without counting against the breaker.
	MaxConcurrent int            `json:"max_concurrent,omitempty"`
	QueueSize     int            `json:"queue_size,omitempty"`
	QueueTimeout  caddy.Duration `json:"queue_timeout,omitempty"`

	// Misses per second (tokens neither cached nor already being asked
	// about) that one client address may cause (default 20; -1: no
	// budget), in bursts of up to AddressMissBurst (default 40). Over it,
	// further misses from that address get 429 with Retry-After, without
	// a call; its tokens already cached keep working. The address is
	// Caddy's client IP (trusted_proxies honoured), an IPv6 address
	// standing for its /64.
	AddressMissRate  float64 `json:"address_miss_rate,omitempty"`
	AddressMissBurst int     `json:"address_miss_burst,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (Protect) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.gatehouse_protect",
		New: func() caddy.Module { return new(Protect) },
	}
}

// Provision precomputes the per-route state.
func (p *Protect) Provision(ctx caddy.Context) error {
	app, err := ctx.App("gatehouse")
	if err != nil {
		return err
	}
	return p.setup(app.(*App), ctx.Logger())
}

func (p *Protect) setup(app *App, logger *zap.Logger) error {
	p.logger = logger
	for _, s := range p.Scopes {
		if !clientstore.ValidScopeToken(s) {
			return fmt.Errorf("gatehouse_protect: invalid scope %q (RFC 6749 §3.3)", s)
		}
	}
	p.header = http.CanonicalHeaderKey(DefaultIdentityHeader)
	if p.Header != "" {
		if !validHeaderName(p.Header) {
			return fmt.Errorf("gatehouse_protect: invalid header name %q", p.Header)
		}
		p.header = http.CanonicalHeaderKey(p.Header)
	}
	p.authorization = p.header == "Authorization"
	p.challenge = `Bearer error="insufficient_scope", error_description="the token lacks a required scope or audience"`
	if len(p.Scopes) > 0 {
		p.challenge += `, scope="` + strings.Join(p.Scopes, " ") + `"`
	}
	rc := introspection.AuthorizerConfig{Scopes: p.Scopes, Audience: p.Audience, CacheSize: app.IdentityCacheSize,
		Enrich: introspection.Enrichment(p.Enrich)}
	if !rc.Enrich.Valid() {
		return fmt.Errorf("gatehouse_protect: enrich must be local_wins, remote_wins or off, not %q", p.Enrich)
	}
	if p.Enrich != "" && p.Introspect == nil {
		return errors.New("gatehouse_protect: enrich applies to introspected tokens only: set introspect too")
	}
	if p.Introspect != nil {
		client, err := p.introspector()
		if err != nil {
			return fmt.Errorf("gatehouse_protect: introspect: %w", err)
		}
		rc.Remote = client
	}
	p.route = app.auth.Authorizer(rc)
	p.metrics = app.state.metrics
	return nil
}

// introspectors holds the introspection clients, keyed by a hash of their
// resolved settings, so that routes and config generations with the same
// settings share one connection pool, answer cache and circuit breaker.
var introspectors = caddy.NewUsagePool()

// sharedIntrospector releases its connections when no config uses it.
type sharedIntrospector struct{ *remote.Client }

func (s sharedIntrospector) Destruct() error {
	s.Close()
	return nil
}

// introspector returns the shared introspection client of p's settings.
func (p *Protect) introspector() (*remote.Client, error) {
	in := p.Introspect
	repl := caddy.NewReplacer()
	cfg := remote.Config{
		URL:              repl.ReplaceKnown(in.URL, ""),
		ClientID:         repl.ReplaceKnown(in.ClientID, ""),
		ClientSecret:     repl.ReplaceKnown(in.ClientSecret, ""),
		AuthMethod:       in.AuthMethod,
		Bearer:           repl.ReplaceKnown(in.Bearer, ""),
		TokenTypeHint:    in.TokenTypeHint,
		CacheTTL:         time.Duration(in.CacheTTL),
		NegativeTTL:      time.Duration(in.NegativeTTL),
		Timeout:          time.Duration(in.Timeout),
		TrustedIssuers:   in.TrustedIssuers,
		CacheEntries:     in.CacheEntries,
		CacheBytes:       in.CacheBytes,
		BreakerFailures:  in.BreakerFailures,
		BreakerCooldown:  time.Duration(in.BreakerCooldown),
		MaxConcurrent:    in.MaxConcurrent,
		QueueSize:        in.QueueSize,
		QueueTimeout:     time.Duration(in.QueueTimeout),
		AddressMissRate:  in.AddressMissRate,
		AddressMissBurst: in.AddressMissBurst,
	}
	for _, v := range [][2]string{{in.URL, cfg.URL}, {in.ClientID, cfg.ClientID}, {in.ClientSecret, cfg.ClientSecret}, {in.Bearer, cfg.Bearer}} {
		if v[0] != "" && v[1] == "" {
			return nil, fmt.Errorf("%q is empty once its placeholders are resolved (an unset environment variable?)", v[0])
		}
	}
	// The key holds a hash of the settings, secrets included, not the
	// secrets themselves.
	settings, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(settings)
	key := hex.EncodeToString(sum[:])
	cfg.Logger = p.logger.Named("introspect")
	val, _, err := introspectors.LoadOrNew(key, func() (caddy.Destructor, error) {
		c, err := remote.New(cfg)
		if err != nil {
			return nil, err
		}
		if u, _ := url.Parse(cfg.URL); u.Scheme == "http" && (cfg.ClientSecret != "" || cfg.Bearer != "") && !isLoopback(u.Hostname()) {
			p.logger.Warn("introspection credentials and tokens travel unencrypted: use https", zap.String("url", remote.Redact(cfg.URL)))
		}
		return sharedIntrospector{c}, nil
	})
	if err != nil {
		return nil, err
	}
	p.poolKey = key
	return val.(sharedIntrospector).Client, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Cleanup releases this config's use of the shared introspection client.
func (p *Protect) Cleanup() error {
	if p.poolKey == "" {
		return nil
	}
	_, err := introspectors.Delete(p.poolKey)
	p.poolKey = ""
	return err
}

// ServeHTTP admits the request or refuses it. A refusal is returned as a
// caddyhttp.HandlerError, with the RFC 6750 challenge (or Retry-After)
// already set on the response, when the server has handle_errors routes;
// otherwise the handler writes the JSON body itself (see answer).
func (p *Protect) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	authz := r.Header["Authorization"]
	// 1. Whatever happens next, no client-sent copy of the identity header
	// may reach the backend.
	stripHeader(r.Header, p.header)

	// 2. Exactly one Bearer token, in exactly one place (RFC 6750 §2).
	if len(authz) > 1 || hasQueryToken(r) {
		return p.refuse(w, r, http.StatusBadRequest, `Bearer error="invalid_request", error_description="send the token once, in the Authorization header"`, "invalid_request", errMultipleTokens)
	}
	var h string
	if len(authz) == 1 {
		h = authz[0]
	}
	tok, err := introspection.ParseBearer(h)
	if errors.Is(err, introspection.ErrNoCredentials) {
		if p.Optional {
			p.metrics.anonymous.Inc()
			return next.ServeHTTP(w, r)
		}
		return p.refuse(w, r, http.StatusUnauthorized, `Bearer realm="gatehouse"`, "", err)
	}
	if err != nil {
		return p.refuse(w, r, http.StatusUnauthorized, invalidTokenChallenge, "invalid_token", err)
	}

	// 3.–5. The token checked in memory, the route policy applied on every
	// request, the identity JWT signed only on a cache miss. A token
	// checked remotely is charged to the client's address.
	var from fmt.Stringer
	if p.Introspect != nil {
		from = (*requestAddr)(r)
	}
	g, err := p.route.AuthorizeFrom(r.Context(), tok, from)
	if err != nil {
		var se *introspection.ScopeError
		if errors.As(err, &se) {
			if ce := p.logger.Check(zapcore.InfoLevel, "request refused"); ce != nil {
				ce.Write(zap.String("client_id", se.ClientID), zap.String("error", "insufficient_scope"))
			}
			return p.refuse(w, r, http.StatusForbidden, p.challenge, "insufficient_scope", nil)
		}
		if errors.Is(err, introspection.ErrUnavailable) {
			return p.unavailable(w, r, err)
		}
		if errors.Is(err, introspection.ErrThrottled) {
			return p.throttled(w, r, err)
		}
		if errors.Is(err, introspection.ErrInvalidToken) {
			return p.refuse(w, r, http.StatusUnauthorized, invalidTokenChallenge, "invalid_token", err)
		}
		p.logger.Error("authorizing request", zap.Error(err))
		return caddyhttp.Error(http.StatusInternalServerError, errors.New("identity signing failed"))
	}
	if p.authorization {
		r.Header["Authorization"] = []string{g.Bearer()}
	} else {
		r.Header[p.header] = []string{g.JWT}
	}

	// 6. Placeholders for other directives.
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		repl.Map(g.Placeholder)
	}
	p.metrics.granted.Inc()
	return next.ServeHTTP(w, r)
}

var errMultipleTokens = errors.New("token sent more than once")

// requestAddr names the client address of a request (clientAddr), worked
// out only when asked: only a token checked remotely needs it.
type requestAddr http.Request

func (r *requestAddr) String() string { return clientAddr((*http.Request)(r)) }

// hasQueryToken reports an RFC 6750 §2.3 access_token query parameter,
// parsing the query only when it could hold one.
func hasQueryToken(r *http.Request) bool {
	return r.URL.RawQuery != "" && r.URL.Query().Has("access_token")
}

const invalidTokenChallenge = `Bearer error="invalid_token", error_description="the access token is invalid, expired or revoked"`

// refuse refuses the request with an RFC 6750 §3 error: the challenge in
// WWW-Authenticate and, for API clients, the error code as JSON (see
// answer). The reason is logged, never the token.
func (p *Protect) refuse(w http.ResponseWriter, r *http.Request, status int, challenge, code string, reason error) error {
	p.metrics.refused(status)
	if reason != nil {
		if ce := p.logger.Check(zapcore.DebugLevel, "request refused"); ce != nil {
			ce.Write(zap.Int("status", status), zap.String("error", code), zap.String("reason", reason.Error()))
		}
	}
	h := w.Header()
	h.Set("WWW-Authenticate", challenge)
	h.Set("Cache-Control", "no-store")
	if code == "" {
		code = "unauthorized"
	}
	return answer(w, r, status, code)
}

// unavailable answers a token that cannot be checked now (its
// authorization server is down, slow or broken) with 503 and Retry-After:
// the client should retry with the same token, not fetch a new one, so
// this is not a 401.
func (p *Protect) unavailable(w http.ResponseWriter, r *http.Request, err error) error {
	if errors.Is(err, remote.ErrOverloaded) {
		p.metrics.overloaded.Inc()
	} else {
		p.metrics.unavailable.Inc()
	}
	var retry time.Duration
	if ue := (*introspection.UnavailableError)(nil); errors.As(err, &ue) {
		retry = ue.RetryAfter
	}
	return p.retryLater(w, r, http.StatusServiceUnavailable, retry, err)
}

// throttled answers a new token from an address over its budget of
// unknown tokens with 429 and Retry-After: the remote server was not
// asked, and the same token may well be good later.
func (p *Protect) throttled(w http.ResponseWriter, r *http.Request, err error) error {
	p.metrics.throttled.Inc()
	var retry time.Duration
	if te := (*introspection.ThrottledError)(nil); errors.As(err, &te) {
		retry = te.RetryAfter
	}
	return p.retryLater(w, r, http.StatusTooManyRequests, retry, err)
}

// retryLater answers status with a Retry-After of at least a second.
func (p *Protect) retryLater(w http.ResponseWriter, r *http.Request, status int, retry time.Duration, err error) error {
	retry = max(retry, time.Second)
	if ce := p.logger.Check(zapcore.DebugLevel, "request refused"); ce != nil {
		ce.Write(zap.Int("status", status), zap.String("reason", err.Error()))
	}
	h := w.Header()
	h.Set("Retry-After", strconv.Itoa(int(math.Ceil(retry.Seconds()))))
	h.Set("Cache-Control", "no-store")
	return answer(w, r, status, "temporarily_unavailable")
}

// refusal is the error of a refused request, inside the
// caddyhttp.HandlerError that handle_errors routes see: its text, which
// they read as {err.message}, is the error code of the JSON body
// (invalid_request, unauthorized, invalid_token, insufficient_scope or
// temporarily_unavailable).
type refusal string

func (e refusal) Error() string { return string(e) }

// answer ends a refused request whose headers are set. On a server with
// error routes (handle_errors) the refusal is returned to them as a
// caddyhttp.HandlerError, as caddyauth does, and they write the body (a
// refusal none of them matches gets its status and headers, with no
// body). On a server without, Caddy would answer a returned error with its
// status alone, so answer writes {"error": code} itself.
func answer(w http.ResponseWriter, r *http.Request, status int, code string) error {
	if srv, ok := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server); ok && srv != nil && srv.Errors != nil && len(srv.Errors.Routes) > 0 {
		return caddyhttp.Error(status, refusal(code))
	}
	writeJSON(w, status, map[string]string{"error": code})
	return nil
}

// stripHeader deletes every copy of the header named canon, whatever its
// case or with underscores in place of dashes, so that no spoofed variant
// slips through a proxy that normalizes names.
func stripHeader(h http.Header, canon string) {
	for k := range h {
		if headerNameMatch(k, canon) {
			delete(h, k)
		}
	}
}

func headerNameMatch(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if x == '_' {
			x = '-'
		}
		if y == '_' {
			y = '-'
		}
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// validHeaderName reports whether s is an RFC 9110 field-name token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*Protect)(nil)
	_ caddy.CleanerUpper          = (*Protect)(nil)
	_ caddy.Destructor            = sharedIntrospector{}
	_ caddyhttp.MiddlewareHandler = (*Protect)(nil)
)
