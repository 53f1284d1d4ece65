// Package remote checks access tokens issued by another authorization
// server with RFC 7662 token introspection, so that Gatehouse can front an
// existing Hydra, Keycloak or other RFC 7662 server and still hand
// backends its own identity JWT. It owns the HTTP client (keep-alive, TLS
// verified, bounded responses, per-call timeout), a cache keyed by the
// token's SHA-256 and bounded in entries and bytes, single-flight calls
// per token, a circuit breaker, and the bounds that keep a flood of
// unknown tokens from one source from denying service to others: a
// budget of misses per client address and a global bound on calls in
// flight. It implements introspection.Introspector and knows nothing of
// Caddy: callers pass the client's address in.
package remote

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gatehousehq/gatehouse/introspection"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"
)

// Defaults of Config.
const (
	DefaultCacheTTL        = 30 * time.Second
	DefaultNegativeTTL     = 5 * time.Second
	DefaultTimeout         = 2 * time.Second
	DefaultCacheEntries    = 10_000
	DefaultCacheBytes      = 16 << 20
	DefaultBreakerFailures = 5
	DefaultBreakerCooldown = 10 * time.Second
	DefaultMaxConcurrent   = 16
	DefaultQueueSize       = 64
	DefaultQueueTimeout    = 100 * time.Millisecond
	DefaultAddressMissRate = 20 // misses per second
	DefaultAddressBurst    = 40
)

// AddressEntries is how many client addresses the miss budget tracks at
// most; when it is full, otter's W-TinyLFU keeps the busiest.
const AddressEntries = 100_000

// overloadRetry is the Retry-After hint of a call shed by MaxConcurrent.
const overloadRetry = time.Second

// MaxResponseBytes bounds an introspection response body; a larger one is
// a broken server, not a token verdict.
const MaxResponseBytes = 64 << 10

// Client authentication methods towards the introspection endpoint
// (RFC 7662 §2.1 requires the caller to be authorized).
const (
	AuthClientSecretBasic = "client_secret_basic" // RFC 6749 §2.3.1, HTTP Basic
	AuthClientSecretPost  = "client_secret_post"  // client_id and client_secret in the form
)

// Config configures a Client.
type Config struct {
	// URL of the RFC 7662 introspection endpoint, http or https.
	URL string
	// ClientID and ClientSecret authenticate Gatehouse to the endpoint
	// with AuthMethod (default client_secret_basic). Optional.
	ClientID, ClientSecret string
	AuthMethod             string
	// Bearer, instead of client credentials, is sent as
	// `Authorization: Bearer <Bearer>`. Optional.
	Bearer string
	// TokenTypeHint, if set, is sent as token_type_hint (RFC 7662 §2.1).
	TokenTypeHint string
	// CacheTTL bounds how long an active answer is reused; never past
	// the token's exp. NegativeTTL is how long a refusal is reused.
	CacheTTL, NegativeTTL time.Duration
	// Timeout bounds each call, connection set-up included.
	Timeout time.Duration
	// TrustedIssuers, if set, are the only accepted `iss` values (exact
	// match); an answer without iss is then refused too.
	TrustedIssuers []string
	// CacheEntries and CacheBytes bound the answer cache.
	CacheEntries int
	CacheBytes   int64
	// After BreakerFailures consecutive failed calls the breaker opens:
	// no call for BreakerCooldown, then one probe call decides.
	BreakerFailures int
	BreakerCooldown time.Duration
	// MaxConcurrent bounds the calls in flight to the server (negative:
	// no bound); calls started by one address hold at most half of them.
	// A call that finds no slot waits up to QueueTimeout, behind at most
	// QueueSize others for a global slot; if it still gets none, its
	// requests fail with ErrOverloaded at once: no call is made, and it
	// does not count against the breaker.
	MaxConcurrent int
	QueueSize     int
	QueueTimeout  time.Duration
	// AddressMissRate is how many misses per second (tokens neither
	// cached nor being asked about already) one client address may
	// cause, in bursts of up to AddressMissBurst (negative rate: no
	// budget). Over it, a miss fails with an
	// *introspection.ThrottledError without a call; cached tokens are
	// not affected.
	AddressMissRate  float64
	AddressMissBurst int
	// RootCAs verifies the server's certificate; nil: the system roots.
	RootCAs *x509.CertPool
	// Logger receives upstream failures and breaker changes, never a
	// token. nil: no logs.
	Logger *zap.Logger
}

// Errors of a refused token. Each wraps introspection.ErrInvalidToken
// (HTTP 401 invalid_token at the edge).
var (
	ErrInactive          = fmt.Errorf("%w: the authorization server says it is not active", introspection.ErrInvalidToken)
	ErrNotAccessToken    = fmt.Errorf("%w: token_use is not access_token", introspection.ErrInvalidToken)
	ErrUntrustedIssuer   = fmt.Errorf("%w: iss is not a trusted issuer", introspection.ErrInvalidToken)
	ErrSenderConstrained = fmt.Errorf("%w: sender-constrained (DPoP or cnf), not a bearer token", introspection.ErrInvalidToken)
	ErrNoIdentity        = fmt.Errorf("%w: the answer names neither a client nor a subject", introspection.ErrInvalidToken)
)

// Errors of a failed call. They reach callers wrapped in an
// *introspection.UnavailableError (HTTP 503 at the edge).
var (
	ErrCircuitOpen   = errors.New("introspection server failing: circuit open")
	ErrBadResponse   = errors.New("malformed introspection response")
	ErrResponseLarge = fmt.Errorf("introspection response over %d bytes", MaxResponseBytes)
)

// Client is an RFC 7662 introspection client with a cache. It is safe for
// concurrent use.
type Client struct {
	cfg       Config
	url       string
	logURL    string // url for logs
	authz     string // Authorization header value, or ""
	http      *http.Client
	transport *http.Transport
	cache     *cache
	flights   singleflight.Group
	breaker   breaker
	gate      *gate          // nil: no bound on calls in flight
	budget    *addressBudget // nil: no budget per address
	inflight  sync.Map       // [sha256.Size]byte → struct{}: calls out now
	logger    *zap.Logger
	now       func() time.Time
}

// Redact is what logs and errors may show of an introspection URL: scheme,
// host and path — never user info or a query, which may hold credentials.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparseable URL)"
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
}

// New validates cfg, fills in the defaults and returns a Client.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("introspection URL %q: want an absolute http(s) URL", Redact(cfg.URL))
	}
	if u.User != nil || u.Fragment != "" {
		return nil, fmt.Errorf("introspection URL %q: no user info or fragment allowed", Redact(cfg.URL))
	}
	switch {
	case cfg.Bearer != "" && (cfg.ClientID != "" || cfg.ClientSecret != ""):
		return nil, errors.New("introspection: use either client credentials or a bearer token, not both")
	case cfg.ClientSecret != "" && cfg.ClientID == "":
		return nil, errors.New("introspection: client_secret without client_id")
	}
	switch cfg.AuthMethod {
	case "":
		cfg.AuthMethod = AuthClientSecretBasic
	case AuthClientSecretBasic, AuthClientSecretPost:
	default:
		return nil, fmt.Errorf("introspection: unknown auth method %q (want %s or %s)", cfg.AuthMethod, AuthClientSecretBasic, AuthClientSecretPost)
	}
	if cfg.CacheTTL < 0 || cfg.NegativeTTL < 0 || cfg.Timeout < 0 || cfg.CacheEntries < 0 || cfg.CacheBytes < 0 ||
		cfg.BreakerFailures < 0 || cfg.BreakerCooldown < 0 || cfg.QueueSize < 0 || cfg.QueueTimeout < 0 || cfg.AddressMissBurst < 0 {
		return nil, errors.New("introspection: durations and sizes must not be negative")
	}
	cfg.CacheTTL = orDefault(cfg.CacheTTL, DefaultCacheTTL)
	cfg.NegativeTTL = orDefault(cfg.NegativeTTL, DefaultNegativeTTL)
	cfg.Timeout = orDefault(cfg.Timeout, DefaultTimeout)
	cfg.CacheEntries = orDefault(cfg.CacheEntries, DefaultCacheEntries)
	cfg.CacheBytes = orDefault(cfg.CacheBytes, DefaultCacheBytes)
	cfg.BreakerFailures = orDefault(cfg.BreakerFailures, DefaultBreakerFailures)
	cfg.BreakerCooldown = orDefault(cfg.BreakerCooldown, DefaultBreakerCooldown)
	cfg.MaxConcurrent = orDefault(cfg.MaxConcurrent, DefaultMaxConcurrent)
	cfg.QueueSize = orDefault(cfg.QueueSize, DefaultQueueSize)
	cfg.QueueTimeout = orDefault(cfg.QueueTimeout, DefaultQueueTimeout)
	if math.IsNaN(cfg.AddressMissRate) || math.IsInf(cfg.AddressMissRate, 0) {
		return nil, errors.New("introspection: the miss rate per address must be a number")
	}
	if cfg.AddressMissRate == 0 {
		cfg.AddressMissRate = DefaultAddressMissRate
	}
	cfg.AddressMissBurst = orDefault(cfg.AddressMissBurst, DefaultAddressBurst)
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}

	// Logs name the endpoint without its query, which could hold a key.
	logURL := Redact(cfg.URL)
	c := &Client{cfg: cfg, url: u.String(), logURL: logURL, logger: cfg.Logger, now: time.Now}
	c.cache = newCache(cfg.CacheEntries, cfg.CacheBytes, func() time.Time { return c.now() })
	c.breaker = breaker{threshold: cfg.BreakerFailures, cooldown: cfg.BreakerCooldown}
	c.gate = newGate(cfg.MaxConcurrent, cfg.QueueSize, cfg.QueueTimeout)
	c.budget = newAddressBudget(cfg.AddressMissRate, cfg.AddressMissBurst, AddressEntries, func() time.Time { return c.now() })
	switch {
	case cfg.Bearer != "":
		c.authz = "Bearer " + cfg.Bearer
	case cfg.ClientID != "" && cfg.AuthMethod == AuthClientSecretBasic:
		// RFC 6749 §2.3.1: both are form-urlencoded before Basic's base64.
		c.authz = "Basic " + base64.StdEncoding.EncodeToString(
			[]byte(url.QueryEscape(cfg.ClientID)+":"+url.QueryEscape(cfg.ClientSecret)))
	}
	c.transport = &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: cfg.RootCAs},
		TLSHandshakeTimeout:   cfg.Timeout,
		ResponseHeaderTimeout: cfg.Timeout,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   64,
		MaxConnsPerHost:       128,
		IdleConnTimeout:       90 * time.Second,
	}
	c.http = &http.Client{
		Transport: c.transport,
		Timeout:   cfg.Timeout,
		// A redirect would resend the credentials and the token elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return c, nil
}

func orDefault[T time.Duration | int | int64](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// Close releases idle connections. Calls in flight finish on their own,
// within the timeout.
func (c *Client) Close() {
	c.transport.CloseIdleConnections()
}

// Introspect implements introspection.Introspector: it answers from the
// cache, or asks the server, one call per token at a time however many
// requests present it. addr is the client's address (an IPv6 address best
// stands for its /64): a token that is neither cached nor already being
// asked about spends one miss of its budget. An empty addr has no budget;
// the bound on calls in flight still applies.
func (c *Client) Introspect(ctx context.Context, token, addr string) (introspection.Result, error) {
	key := sha256.Sum256([]byte(token))
	if e := c.cache.get(key, c.now()); e != nil {
		return e.result(token, c.now())
	}
	return c.miss(ctx, token, key, addr)
}

// miss joins or starts the one call for this token. Joining a call
// already out costs the server nothing, so only starting one spends a
// miss of addr's budget.
func (c *Client) miss(ctx context.Context, token string, key [sha256.Size]byte, addr string) (introspection.Result, error) {
	if _, out := c.inflight.Load(key); !out && c.budget != nil && addr != "" {
		// A call that ended since the cache was asked has filled it (fetch
		// caches before it stops counting as out): that is no miss.
		if e := c.cache.get(key, c.now()); e != nil {
			return e.result(token, c.now())
		}
		if wait, ok := c.budget.take(addr, c.now()); !ok {
			return introspection.Result{}, &introspection.ThrottledError{RetryAfter: wait}
		}
	}
	ch := c.flights.DoChan(string(key[:]), func() (any, error) { return c.fetch(token, key, addr) })
	select {
	case res := <-ch:
		if res.Err != nil {
			return introspection.Result{}, res.Err
		}
		return res.Val.(*entry).result(token, c.now())
	case <-ctx.Done():
		// The call goes on for the others waiting for it, and fills the
		// cache; this request is gone anyway.
		return introspection.Result{}, &introspection.UnavailableError{Err: ctx.Err()}
	}
}

// fetch runs one call to the server for token, under the breaker, and
// caches its verdict.
func (c *Client) fetch(token string, key [sha256.Size]byte, addr string) (*entry, error) {
	// The call before this one may have just filled the cache.
	if e := c.cache.get(key, c.now()); e != nil {
		return e, nil
	}
	c.inflight.Store(key, struct{}{})
	defer c.inflight.Delete(key)
	// An open breaker answers before a slot is waited for; the slot
	// before allow, which may make this call the probe.
	if wait, open := c.breaker.blocked(c.now()); open {
		return nil, &introspection.UnavailableError{RetryAfter: wait, Err: ErrCircuitOpen}
	}
	if !c.gate.enter(addr) {
		return nil, &introspection.UnavailableError{RetryAfter: overloadRetry, Err: ErrOverloaded}
	}
	defer c.gate.leave(addr)
	if wait, ok := c.breaker.allow(c.now()); !ok {
		return nil, &introspection.UnavailableError{RetryAfter: wait, Err: ErrCircuitOpen}
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.Timeout)
	defer cancel()
	body, err := c.post(ctx, token)
	var ans *answer
	if err == nil {
		ans, err = parseResponse(body)
	}
	now := c.now()
	if err != nil {
		opened, wait := c.breaker.failure(now)
		if opened {
			c.logger.Warn("introspection server failing: circuit open", zap.String("url", c.logURL),
				zap.Duration("cooldown", c.cfg.BreakerCooldown), zap.Error(err))
		} else if ce := c.logger.Check(zap.WarnLevel, "introspection failed"); ce != nil {
			ce.Write(zap.String("url", c.logURL), zap.Error(err))
		}
		return nil, &introspection.UnavailableError{RetryAfter: wait, Err: err}
	}
	if c.breaker.success() {
		c.logger.Info("introspection server answering again: circuit closed", zap.String("url", c.logURL))
	}
	e := c.judge(ans, now, len(body))
	c.cache.put(key, e, now)
	return e, nil
}

// post sends the RFC 7662 §2.1 request and returns the 200 response body.
func (c *Client) post(ctx context.Context, token string) ([]byte, error) {
	form := url.Values{"token": {token}}
	if c.cfg.TokenTypeHint != "" {
		form.Set("token_type_hint", c.cfg.TokenTypeHint)
	}
	if c.cfg.ClientID != "" && c.cfg.AuthMethod == AuthClientSecretPost {
		form.Set("client_id", c.cfg.ClientID)
		form.Set("client_secret", c.cfg.ClientSecret)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if c.authz != "" {
		req.Header.Set("Authorization", c.authz)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ue := (*url.Error)(nil); errors.As(err, &ue) {
			ue.URL = c.logURL // errors are logged: keep the query out
		}
		return nil, err
	}
	defer resp.Body.Close()
	// Read at most one byte past the limit: enough to tell, and a body
	// read to its end keeps the connection reusable.
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("reading the introspection response: %w", err)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("introspection server answered HTTP %d", resp.StatusCode)
	case len(body) > MaxResponseBytes:
		return nil, ErrResponseLarge
	}
	return body, nil
}
