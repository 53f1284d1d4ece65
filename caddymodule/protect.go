package caddymodule

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/gatehousehq/gatehouse/clientstore"
	"github.com/gatehousehq/gatehouse/introspection"
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
// carry a valid Gatehouse access token with the route's scopes and
// audience, and hands the backend a signed identity JWT in a header.
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

	header        string // canonical
	authorization bool
	challenge     string // WWW-Authenticate value of a 403
	route         *introspection.Route
	logger        *zap.Logger
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
	p.route = app.auth.NewPolicyRoute(p.Scopes, p.Audience, app.IdentityCacheSize)
	return nil
}

// ServeHTTP runs DESIGN.md's hot path.
func (p *Protect) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	authz := r.Header["Authorization"]
	// 1. Whatever happens next, no client-sent copy of the identity header
	// may reach the backend.
	stripHeader(r.Header, p.header)

	// 2. Exactly one Bearer token, in exactly one place (RFC 6750 §2).
	if len(authz) > 1 || hasQueryToken(r) {
		return p.refuse(w, http.StatusBadRequest, `Bearer error="invalid_request", error_description="send the token once, in the Authorization header"`, "invalid_request", errMultipleTokens)
	}
	var h string
	if len(authz) == 1 {
		h = authz[0]
	}
	tok, err := introspection.ParseBearer(h)
	if errors.Is(err, introspection.ErrNoCredentials) {
		if p.Optional {
			return next.ServeHTTP(w, r)
		}
		return p.refuse(w, http.StatusUnauthorized, `Bearer realm="gatehouse"`, "", err)
	}
	if err != nil {
		return p.refuse(w, http.StatusUnauthorized, invalidTokenChallenge, "invalid_token", err)
	}

	// 3.–5. The token checked in memory, the route policy applied on every
	// request, the identity JWT signed only on a cache miss.
	g, err := p.route.Authorize(r.Context(), tok)
	if err != nil {
		var se *introspection.ScopeError
		if errors.As(err, &se) {
			if ce := p.logger.Check(zapcore.InfoLevel, "request refused"); ce != nil {
				ce.Write(zap.String("client_id", se.ClientID), zap.String("error", "insufficient_scope"))
			}
			return p.refuse(w, http.StatusForbidden, p.challenge, "insufficient_scope", nil)
		}
		if errors.Is(err, introspection.ErrInvalidToken) {
			return p.refuse(w, http.StatusUnauthorized, invalidTokenChallenge, "invalid_token", err)
		}
		p.logger.Error("authorizing request", zap.Error(err))
		return caddyhttp.Error(http.StatusInternalServerError, errors.New("identity signing failed"))
	}
	if p.authorization {
		r.Header["Authorization"] = g.Bearer
	} else {
		r.Header[p.header] = g.Header
	}

	// 6. Placeholders for other directives.
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		repl.Map(g.Placeholder)
	}
	return next.ServeHTTP(w, r)
}

var errMultipleTokens = errors.New("token sent more than once")

// hasQueryToken reports an RFC 6750 §2.3 access_token query parameter,
// parsing the query only when it could hold one.
func hasQueryToken(r *http.Request) bool {
	return strings.Contains(r.URL.RawQuery, "access_token") && r.URL.Query().Has("access_token")
}

const invalidTokenChallenge = `Bearer error="invalid_token", error_description="the access token is invalid, expired or revoked"`

// refuse answers an RFC 6750 §3 error: the challenge in WWW-Authenticate
// and, for API clients, the error code as JSON. The reason is logged, never
// the token.
func (p *Protect) refuse(w http.ResponseWriter, status int, challenge, code string, reason error) error {
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
	_ caddyhttp.MiddlewareHandler = (*Protect)(nil)
)
