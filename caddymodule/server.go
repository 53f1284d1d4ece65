package caddymodule

import (
	"encoding/json"
	"errors"
	"io"
	"math"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/gatehousehq/gatehouse/clientstore"
	"github.com/gatehousehq/gatehouse/introspection"
	"github.com/gatehousehq/gatehouse/introspection/clientauth"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func init() {
	caddy.RegisterModule(Server{})
}

// Endpoint paths of the authorization server (fixed by the contract).
const (
	pathToken      = "/oauth2/token"
	pathIntrospect = "/oauth2/introspect"
	pathRevoke     = "/oauth2/revoke"
	pathJWKS       = "/.well-known/jwks.json"
	pathMetadata   = "/.well-known/oauth-authorization-server"
)

// introspectionJWTType is RFC 9701's media type and `typ` of a signed
// introspection response.
const introspectionJWTType = "token-introspection+jwt"

// maxFormBytes bounds a token request body.
const maxFormBytes = 64 << 10

// Server is the `gatehouse_server` handler: the OAuth 2.0 authorization
// server endpoints for machine clients. Requests to other paths pass
// through to the next handler.
type Server struct {
	// prefix is the issuer's path ("" or e.g. "/tenant"): the endpoints
	// answer under it as well as at their fixed paths, and the metadata
	// also at /.well-known/oauth-authorization-server<prefix> (RFC 8414
	// §3.1).
	prefix     string
	app        *App
	logger     *zap.Logger
	clientAuth *clientauth.Authenticator
}

// CaddyModule returns the Caddy module information.
func (Server) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.gatehouse_server",
		New: func() caddy.Module { return new(Server) },
	}
}

// Provision binds the handler to the gatehouse app.
func (s *Server) Provision(ctx caddy.Context) error {
	app, err := ctx.App("gatehouse")
	if err != nil {
		return err
	}
	s.setup(app.(*App), ctx.Logger())
	return nil
}

func (s *Server) setup(app *App, logger *zap.Logger) {
	s.app = app
	s.logger = logger
	if u, err := url.Parse(app.Issuer); err == nil {
		s.prefix = strings.TrimSuffix(u.Path, "/")
	}
	base := strings.TrimSuffix(app.Issuer, "/")
	assertions := clientauth.NewAssertions(app.auth.Clients(), app.auth.Revocations(), app.remoteKeys,
		app.Issuer, base+pathToken, base+pathIntrospect, base+pathRevoke)
	s.clientAuth = clientauth.NewAuthenticator(app.auth.Clients(), assertions, app.state.limits)
}

// ServeHTTP routes the authorization server endpoints.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	path := r.URL.Path
	if s.prefix != "" {
		if path == pathMetadata+s.prefix {
			path = pathMetadata
		} else if rest, ok := strings.CutPrefix(path, s.prefix); ok && strings.HasPrefix(rest, "/") {
			path = rest
		}
	}
	switch path {
	case pathToken:
		if !allowMethods(w, r, http.MethodPost) {
			return nil
		}
		if !s.app.tokens.enter(r.Context()) {
			s.shed(w)
			return nil
		}
		defer s.app.tokens.leave()
		s.serveToken(w, r)
	case pathIntrospect:
		if !allowMethods(w, r, http.MethodPost) {
			return nil
		}
		s.serveIntrospect(w, r)
	case pathRevoke:
		if !allowMethods(w, r, http.MethodPost) {
			return nil
		}
		s.serveRevoke(w, r)
	case pathJWKS:
		if !allowMethods(w, r, http.MethodGet, http.MethodHead) {
			return nil
		}
		w.Header().Set("Cache-Control", "public, max-age=300")
		writeJSONBytes(w, http.StatusOK, s.app.auth.Signer().JWKS())
	case pathMetadata:
		if !allowMethods(w, r, http.MethodGet, http.MethodHead) {
			return nil
		}
		w.Header().Set("Cache-Control", "public, max-age=300")
		writeJSON(w, http.StatusOK, s.metadata())
	default:
		return next.ServeHTTP(w, r)
	}
	return nil
}

// allowMethods answers 405 with an Allow header unless r uses one of
// methods.
func allowMethods(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	writeOAuthError(w, http.StatusMethodNotAllowed, "invalid_request", "method not allowed")
	return false
}

// metadata is the RFC 8414 §2 authorization server metadata.
func (s *Server) metadata() map[string]any {
	iss := s.app.Issuer
	base := strings.TrimSuffix(iss, "/")
	authMethods := []string{clientstore.AuthMethodBasic, clientstore.AuthMethodPost, clientstore.AuthMethodPrivateKeyJWT}
	var assertionAlgs []string
	for _, a := range clientauth.AssertionAlgs() {
		assertionAlgs = append(assertionAlgs, string(a))
	}
	md := map[string]any{
		"issuer":                                iss,
		"token_endpoint":                        base + pathToken,
		"jwks_uri":                              base + pathJWKS,
		"introspection_endpoint":                base + pathIntrospect,
		"revocation_endpoint":                   base + pathRevoke,
		"grant_types_supported":                 []string{clientstore.GrantClientCredentials},
		"response_types_supported":              []string{},
		"token_endpoint_auth_methods_supported": authMethods,
		"token_endpoint_auth_signing_alg_values_supported":         assertionAlgs,
		"introspection_endpoint_auth_methods_supported":            authMethods,
		"introspection_endpoint_auth_signing_alg_values_supported": assertionAlgs,
		"revocation_endpoint_auth_methods_supported":               authMethods,
		"revocation_endpoint_auth_signing_alg_values_supported":    assertionAlgs,
		"introspection_signing_alg_values_supported":               []string{s.app.auth.Signer().Alg()},
		"id_token_signing_alg_values_supported":                    []string{s.app.auth.Signer().Alg()},
	}
	if len(s.app.ScopesSupported) > 0 {
		md["scopes_supported"] = s.app.ScopesSupported
	}
	return md
}

// oauthError is an RFC 6749 §5.2 error response.
type oauthError struct {
	status      int
	retryAfter  time.Duration
	Code        string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

func (e *oauthError) Error() string { return e.Code + ": " + e.Description }

func newOAuthError(status int, code, desc string) *oauthError {
	return &oauthError{status: status, Code: code, Description: desc}
}

func writeOAuthError(w http.ResponseWriter, status int, code, desc string) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	writeJSON(w, status, oauthError{Code: code, Description: desc})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"server_error"}`)
	}
	writeJSONBytes(w, status, b)
}

func writeJSONBytes(w http.ResponseWriter, status int, b []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

// tokenResponse is the RFC 6749 §5.1 success response.
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	Scope       string `json:"scope,omitempty"`
}

// serveToken is the client_credentials grant (RFC 6749 §4.4).
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	client, form, oerr := s.authenticate(w, r)
	if oerr == nil {
		oerr = s.checkGrant(client, form)
	}
	var tok introspection.Token
	if oerr == nil {
		var err error
		tok, err = s.app.auth.Issue(client, form.Get("scope"), requestedAudience(form))
		switch {
		case errors.Is(err, introspection.ErrInvalidScope):
			oerr = newOAuthError(http.StatusBadRequest, "invalid_scope", "the requested scope is not allowed for this client")
		case errors.Is(err, introspection.ErrInvalidTarget):
			oerr = newOAuthError(http.StatusBadRequest, "invalid_target", "the requested audience or resource is not allowed for this client")
		case errors.Is(err, introspection.ErrTokenTooLarge):
			oerr = newOAuthError(http.StatusBadRequest, "invalid_request", "the granted scope and audiences make the token too large; request fewer")
		case err != nil:
			s.logger.Error("minting token", zap.Error(err))
			oerr = newOAuthError(http.StatusInternalServerError, "server_error", "could not mint a token")
		}
	}
	if oerr != nil {
		s.app.state.metrics.tokens.WithLabelValues(oerr.Code).Inc()
		s.logRefusal("token refused", client, oerr, r)
		s.writeError(w, r, form, oerr)
		return
	}
	s.app.state.metrics.tokens.WithLabelValues("issued").Inc()
	if ce := s.logger.Check(zapcore.InfoLevel, "token issued"); ce != nil {
		ce.Write(zap.String("client_id", client.ID), zap.String("scope", tok.Scope),
			zap.Strings("audience", tok.Audience), zap.Int64("expires_in", tok.ExpiresIn))
	}
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, tokenResponse{
		AccessToken: tok.AccessToken,
		TokenType:   "Bearer",
		ExpiresIn:   tok.ExpiresIn,
		Scope:       tok.Scope,
	})
}

// shed refuses a token request the endpoint has no room for now: 503
// temporarily_unavailable with Retry-After, before reading its body or
// authenticating it, so an overload costs no more work.
func (s *Server) shed(w http.ResponseWriter) {
	s.app.state.metrics.tokens.WithLabelValues("temporarily_unavailable").Inc()
	w.Header().Set("Retry-After", "1")
	writeOAuthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "too many token requests at once; retry shortly")
}

// writeError writes an OAuth error response to r, whose form is form; a refusal by the
// brute-force limiter carries a Retry-After. A failed client
// authentication (401 invalid_client) carries a Basic challenge when the
// client authenticated with the Authorization header, as RFC 6749 §5.2
// requires, or did not authenticate at all (an invitation to); not when it
// sent its credentials in the body (client_secret_post, private_key_jwt),
// where a challenge for another scheme would mislead it.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, form url.Values, oerr *oauthError) {
	switch oerr.status {
	case http.StatusUnauthorized:
		if len(r.Header.Values("Authorization")) > 0 || !clientauth.HasBodyCredentials(form) {
			w.Header().Set("WWW-Authenticate", `Basic realm="gatehouse", charset="UTF-8"`)
		}
	case http.StatusTooManyRequests:
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(oerr.retryAfter.Seconds())))))
	}
	writeOAuthError(w, oerr.status, oerr.Code, oerr.Description)
}

// serveIntrospect is RFC 7662: the caller authenticates as a client the
// operator allowed to introspect; anything but an active token is
// {"active": false} and nothing else (§2.2, §4).
func (s *Server) serveIntrospect(w http.ResponseWriter, r *http.Request) {
	caller, form, oerr := s.authenticate(w, r)
	if oerr == nil && !caller.Introspect {
		oerr = newOAuthError(http.StatusUnauthorized, "invalid_client", "the client may not introspect tokens")
	}
	if oerr == nil && form.Get("token") == "" {
		oerr = newOAuthError(http.StatusBadRequest, "invalid_request", "token is required")
	}
	if oerr != nil {
		s.logRefusal("introspection refused", caller, oerr, r)
		s.writeError(w, r, form, oerr)
		return
	}
	resp := introspection.Response{Active: false}
	res, err := s.app.auth.Check(form.Get("token"))
	// Like Hydra, an optional `scope` lists scopes the token must have;
	// Oathkeeper's default scope_strategy "none" relies on it.
	if required := clientstore.SplitScope(form.Get("scope")); err == nil && !res.HasScopes(required) {
		err = introspection.ErrInsufficientScope
	}
	s.app.state.metrics.introspect.WithLabelValues(strconv.FormatBool(err == nil)).Inc()
	if err == nil {
		resp = res.Response()
	} else if ce := s.logger.Check(zapcore.DebugLevel, "introspected inactive token"); ce != nil {
		ce.Write(zap.String("caller", caller.ID), zap.String("reason", err.Error()))
	}
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	if !acceptsIntrospectionJWT(r.Header.Get("Accept")) {
		writeJSON(w, http.StatusOK, resp)
		return
	}
	// RFC 9701 §5: the members under token_introspection, signed.
	payload, err := json.Marshal(map[string]any{
		"iss":                 s.app.Issuer,
		"aud":                 caller.ID,
		"iat":                 time.Now().Unix(),
		"token_introspection": resp,
	})
	var jwt string
	if err == nil {
		jwt, err = s.app.auth.Signer().SignTyped(payload, introspectionJWTType)
	}
	if err != nil {
		s.logger.Error("signing introspection response", zap.Error(err))
		writeOAuthError(w, http.StatusInternalServerError, "server_error", "could not sign the response")
		return
	}
	h.Set("Content-Type", "application/"+introspectionJWTType)
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, jwt)
}

// acceptsIntrospectionJWT reports whether the Accept header asks for RFC
// 9701's signed response.
func acceptsIntrospectionJWT(accept string) bool {
	for _, part := range strings.Split(accept, ",") {
		mt, _, _ := strings.Cut(part, ";")
		if strings.EqualFold(strings.TrimSpace(mt), "application/"+introspectionJWTType) {
			return true
		}
	}
	return false
}

// serveRevoke is RFC 7009: a client revokes its own tokens; an unknown,
// invalid or foreign token still gets 200 (§2.2).
func (s *Server) serveRevoke(w http.ResponseWriter, r *http.Request) {
	client, form, oerr := s.authenticate(w, r)
	if oerr == nil && form.Get("token") == "" {
		oerr = newOAuthError(http.StatusBadRequest, "invalid_request", "token is required")
	}
	if oerr != nil {
		s.logRefusal("revocation refused", client, oerr, r)
		s.writeError(w, r, form, oerr)
		return
	}
	err := s.app.auth.Revoke(r.Context(), client, form.Get("token"))
	if errors.Is(err, introspection.ErrNotTokenOwner) {
		oerr := newOAuthError(http.StatusBadRequest, "unauthorized_client", "the token was not issued to this client")
		s.logRefusal("revocation refused", client, oerr, r)
		s.writeError(w, r, form, oerr)
		return
	}
	if err != nil {
		s.logger.Error("recording revocation", zap.String("client_id", client.ID), zap.Error(err))
		writeOAuthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "could not record the revocation")
		return
	}
	if ce := s.logger.Check(zapcore.InfoLevel, "revocation requested"); ce != nil {
		ce.Write(zap.String("client_id", client.ID))
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

func (s *Server) logRefusal(msg string, client *clientstore.Client, oerr *oauthError, r *http.Request) {
	if ce := s.logger.Check(zapcore.InfoLevel, msg); ce != nil {
		id := ""
		if client != nil {
			id = client.ID
		}
		ce.Write(zap.String("client_id", id), zap.String("error", oerr.Code),
			zap.String("reason", oerr.Description), zap.String("remote_ip", clientAddr(r)))
	}
}

// checkGrant applies RFC 6749 §4.4.2 and §5.2 to an authenticated client.
func (s *Server) checkGrant(client *clientstore.Client, form url.Values) *oauthError {
	switch gt := form.Get("grant_type"); {
	case gt == "":
		return newOAuthError(http.StatusBadRequest, "invalid_request", "grant_type is required")
	case gt != clientstore.GrantClientCredentials:
		return newOAuthError(http.StatusBadRequest, "unsupported_grant_type", "only client_credentials is supported")
	case !client.HasGrant(gt):
		return newOAuthError(http.StatusBadRequest, "unauthorized_client", "the client may not use this grant type")
	}
	for _, res := range form["resource"] {
		// RFC 8707 §2: an absolute URI without a fragment.
		u, err := url.Parse(res)
		if err != nil || !u.IsAbs() || u.Fragment != "" || strings.Contains(res, "#") {
			return newOAuthError(http.StatusBadRequest, "invalid_target", "resource must be an absolute URI without a fragment")
		}
	}
	return nil
}

// requestedAudience merges RFC 8707 `resource` (repeatable) and the
// `audience` parameter (space-separated, as Hydra takes it).
func requestedAudience(form url.Values) []string {
	var out []string
	for _, a := range form["audience"] {
		out = append(out, strings.Fields(a)...)
	}
	return append(out, form["resource"]...)
}

// parseForm reads the token request form (RFC 6749 §3.2): POST with
// application/x-www-form-urlencoded, bounded, each parameter at most once
// (but for the repeatable `resource` and `audience`).
func parseForm(w http.ResponseWriter, r *http.Request) (url.Values, *oauthError) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, newOAuthError(http.StatusBadRequest, "invalid_request", "the body must be application/x-www-form-urlencoded")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxFormBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, newOAuthError(http.StatusRequestEntityTooLarge, "invalid_request", "request body too large")
		}
		return nil, newOAuthError(http.StatusBadRequest, "invalid_request", "could not read the request body")
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, newOAuthError(http.StatusBadRequest, "invalid_request", "malformed form body")
	}
	for k, v := range form {
		// RFC 6749 §3.2: a parameter sent without a value is omitted.
		v = slices.DeleteFunc(v, func(x string) bool { return x == "" })
		if len(v) == 0 {
			delete(form, k)
			continue
		}
		form[k] = v
		if len(v) > 1 && k != "resource" && k != "audience" {
			return nil, newOAuthError(http.StatusBadRequest, "invalid_request", "parameter "+describeParam(k)+" is repeated")
		}
	}
	return form, nil
}

// describeParam names a request parameter in an error_description, which
// RFC 6749 §5.2 limits to %x20-21 / %x23-5B / %x5D-7E.
func describeParam(k string) string {
	for i := 0; i < len(k); i++ {
		if c := k[i]; c < 0x20 || c == '"' || c == '\\' || c > 0x7E {
			return "(unnamed)"
		}
	}
	if len(k) > 64 {
		return k[:64] + "..."
	}
	return k
}

// authenticate parses the request and authenticates the client with
// exactly one method: client_secret_basic, client_secret_post or
// private_key_jwt (RFC 6749 §2.3, RFC 7523 §2.2; package clientauth).
// Credentials in the query string are refused. Repeated failures from an
// address or for a client_id are slowed down (429 with Retry-After).
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (*clientstore.Client, url.Values, *oauthError) {
	if err := clientauth.CheckQuery(r.URL.Query()); err != nil {
		return nil, nil, s.clientAuthError(err, "")
	}
	form, oerr := parseForm(w, r)
	if oerr != nil {
		return nil, nil, oerr
	}
	addr := clientAddr(r)
	creds, err := clientauth.ReadCredentials(r.Header.Values("Authorization"), form)
	if err != nil {
		return nil, form, s.clientAuthError(err, addr)
	}
	client, err := s.clientAuth.Authenticate(r.Context(), creds, addr)
	if err != nil {
		return client, form, s.clientAuthError(err, addr)
	}
	return client, form, nil
}

// clientAuthError is the RFC 6749 §5.2 response to a refusal of client
// authentication by package clientauth.
func (s *Server) clientAuthError(err error, addr string) *oauthError {
	var (
		limited *clientauth.LimitedError
		method  *clientauth.MethodError
	)
	switch {
	case errors.As(err, &limited):
		oerr := newOAuthError(http.StatusTooManyRequests, "temporarily_unavailable", "too many failed authentication attempts; retry later")
		oerr.retryAfter = limited.RetryAfter
		return oerr
	case errors.Is(err, clientauth.ErrCredentialsInQuery):
		return newOAuthError(http.StatusBadRequest, "invalid_request", "credentials must not be sent in the query string")
	case errors.Is(err, clientauth.ErrMalformedBasic):
		return newOAuthError(http.StatusUnauthorized, "invalid_client", "malformed Basic credentials")
	case errors.Is(err, clientauth.ErrMultipleMethods):
		return newOAuthError(http.StatusBadRequest, "invalid_request", "more than one client authentication method")
	case errors.Is(err, clientauth.ErrClientIDMismatch):
		return newOAuthError(http.StatusBadRequest, "invalid_request", "client_id in the body differs from the Basic credentials")
	case errors.Is(err, clientauth.ErrNoCredentials):
		return newOAuthError(http.StatusUnauthorized, "invalid_client", "client authentication is required")
	case errors.Is(err, clientauth.ErrAssertionType):
		return newOAuthError(http.StatusBadRequest, "invalid_request", "client_assertion_type must be "+clientauth.ClientAssertionType)
	case errors.Is(err, clientauth.ErrAssertion):
		// The reason goes to the log only: telling the caller would
		// reveal which client ids exist.
		if ce := s.logger.Check(zapcore.InfoLevel, "client assertion refused"); ce != nil {
			ce.Write(zap.String("reason", err.Error()), zap.String("remote_ip", addr))
		}
		return newOAuthError(http.StatusUnauthorized, "invalid_client", "client authentication failed")
	case errors.Is(err, clientauth.ErrFailed):
		return newOAuthError(http.StatusUnauthorized, "invalid_client", "client authentication failed")
	case errors.Is(err, clientauth.ErrDisabled):
		return newOAuthError(http.StatusUnauthorized, "invalid_client", "the client is disabled")
	case errors.As(err, &method):
		return newOAuthError(http.StatusUnauthorized, "invalid_client", "the client is registered for "+method.Registered)
	default: // clientauth.ErrUnavailable
		s.logger.Error("verifying client assertion", zap.Error(err))
		return newOAuthError(http.StatusServiceUnavailable, "temporarily_unavailable", "could not verify the client assertion")
	}
}

// clientAddr is the client's IP as Caddy determined it (honouring
// trusted_proxies), falling back to the connection's address. An IPv6
// address stands for its /64: whoever holds one address of a /64 usually
// holds them all.
func clientAddr(r *http.Request) string {
	ip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	if !ok || ip == "" {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			return r.RemoteAddr
		}
		ip = host
	}
	if a, err := netip.ParseAddr(ip); err == nil && a.Is6() && !a.Is4In6() {
		if p, err := a.Prefix(64); err == nil {
			return p.String()
		}
	}
	return ip
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*Server)(nil)
	_ caddyhttp.MiddlewareHandler = (*Server)(nil)
)
