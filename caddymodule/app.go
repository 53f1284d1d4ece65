// Package caddymodule is Gatehouse's Caddy glue: the `gatehouse` app, the
// `gatehouse_server` and `gatehouse_protect` HTTP handlers, the admin API
// and the Caddyfile syntax. The logic lives in clientstore and
// introspection; this package wires it into Caddy.
package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/gatehousehq/gatehouse/clientstore"
	"github.com/gatehousehq/gatehouse/introspection"
	"go.uber.org/zap"
)

func init() {
	caddy.RegisterModule(App{})
}

// App is the `gatehouse` app: it owns the client store, the keys and the
// caches that the `gatehouse_server` and `gatehouse_protect` handlers use.
// The open store is shared across config reloads, so a reload neither loses
// state nor waits on bbolt's file lock.
type App struct {
	// Where clients, keys and revocations are kept.
	Storage *Storage `json:"storage,omitempty"`

	// The issuer: the `iss` of every token and identity JWT, and the base
	// of the endpoint URLs in the authorization server metadata. An
	// absolute http(s) URL without query or fragment. Required.
	Issuer string `json:"issuer,omitempty"`

	// Lifetime of access tokens. Default: 1h.
	TokenTTL caddy.Duration `json:"token_ttl,omitempty"`

	// Lifetime of identity JWTs handed to backends; never beyond the
	// access token's own expiry. Default: 5m.
	IdentityTTL caddy.Duration `json:"identity_ttl,omitempty"`

	// Signing algorithm of identity JWTs: ES256 (default), EdDSA, RS256
	// or PS256.
	SigningAlg string `json:"signing_alg,omitempty"`

	// Maximum number of signed identity JWTs cached per protected route.
	// Default: 100000.
	IdentityCacheSize int `json:"identity_cache_size,omitempty"`

	// Access-token format for clients that do not choose one with their
	// access_token_strategy: "opaque" (default) or "jwt" (RFC 9068).
	AccessTokenStrategy string `json:"access_token_strategy,omitempty"`

	// Scopes advertised as scopes_supported in the RFC 8414 metadata.
	ScopesSupported []string `json:"scopes_supported,omitempty"`

	auth       *introspection.Authority
	remoteKeys *introspection.RemoteKeys
	state      *state
	poolKey    string
	logger     *zap.Logger
	stop       context.CancelFunc
}

// Storage selects the store. Only the embedded bbolt store exists today.
type Storage struct {
	// Backend is "bolt" (the default).
	Backend string `json:"backend,omitempty"`
	// Path of the bbolt file. Default: gatehouse/gatehouse.db in Caddy's
	// data directory.
	Path string `json:"path,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "gatehouse",
		New: func() caddy.Module { return new(App) },
	}
}

// stores holds the open stores, keyed by the cleaned absolute file path,
// so that config generations share one open bbolt file.
var stores = caddy.NewUsagePool()

// state is what config generations share for one store.
type state struct {
	store       *clientstore.BoltStore
	clients     *clientstore.Cache
	sealer      *introspection.Sealer
	revocations *introspection.Revocations
}

// Destruct closes the store when no config uses it any more.
func (s *state) Destruct() error { return s.store.Close() }

// Provision opens (or shares) the store and builds the token authority.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	if err := a.validate(); err != nil {
		return err
	}
	path, err := a.storePath()
	if err != nil {
		return err
	}
	val, _, err := stores.LoadOrNew(path, func() (caddy.Destructor, error) {
		return openState(ctx, path)
	})
	if err != nil {
		return fmt.Errorf("gatehouse storage: %w", err)
	}
	a.poolKey = path
	st := val.(*state)
	a.state = st
	signer, err := introspection.LoadSigner(ctx, st.store, a.SigningAlg)
	if err != nil {
		return err
	}
	a.auth = introspection.NewAuthority(introspection.Config{
		Issuer:              a.Issuer,
		TokenTTL:            time.Duration(a.TokenTTL),
		IdentityTTL:         time.Duration(a.IdentityTTL),
		AccessTokenStrategy: a.AccessTokenStrategy,
	}, st.clients, st.sealer, signer, st.revocations)
	a.remoteKeys = introspection.NewRemoteKeys(nil)
	a.logger.Info("gatehouse ready", zap.String("storage", path), zap.String("issuer", a.Issuer),
		zap.String("signing_alg", signer.Alg()), zap.String("kid", signer.KeyID()))
	return nil
}

func openState(ctx context.Context, path string) (*state, error) {
	store, err := clientstore.OpenBolt(path, 0)
	if err != nil {
		return nil, err
	}
	st, err := openStateOn(ctx, store)
	if err != nil {
		store.Close()
		return nil, err
	}
	return st, nil
}

// openStateOn loads clients, keys and revocations of an open store.
func openStateOn(ctx context.Context, store *clientstore.BoltStore) (*state, error) {
	st := &state{store: store}
	var err error
	if st.clients, err = clientstore.NewCache(ctx, store); err == nil {
		if st.sealer, err = introspection.LoadSealer(ctx, store); err == nil {
			st.revocations, err = introspection.LoadRevocations(ctx, store)
		}
	}
	if err != nil {
		return nil, err
	}
	return st, nil
}

func (a *App) validate() error {
	if a.Issuer == "" {
		return errors.New("gatehouse: issuer is required (global option: gatehouse { issuer https://auth.example.com })")
	}
	if err := validateIssuer(a.Issuer); err != nil {
		return fmt.Errorf("gatehouse: issuer %q: %w", a.Issuer, err)
	}
	if a.SigningAlg == "" {
		a.SigningAlg = introspection.DefaultAlg
	}
	if a.TokenTTL < 0 || a.IdentityTTL < 0 || a.IdentityCacheSize < 0 {
		return errors.New("gatehouse: token_ttl, identity_ttl and identity_cache_size must not be negative")
	}
	switch a.AccessTokenStrategy {
	case "", clientstore.TokenStrategyOpaque, clientstore.TokenStrategyJWT:
	default:
		return fmt.Errorf("gatehouse: access_token_strategy must be opaque or jwt, not %q", a.AccessTokenStrategy)
	}
	for _, sc := range a.ScopesSupported {
		if !clientstore.ValidScopeToken(sc) {
			return fmt.Errorf("gatehouse: scopes_supported: invalid scope %q (RFC 6749 §3.3)", sc)
		}
	}
	if a.Storage != nil && a.Storage.Backend != "" && a.Storage.Backend != "bolt" {
		return fmt.Errorf("gatehouse: unknown storage backend %q (supported: bolt)", a.Storage.Backend)
	}
	return nil
}

// validateIssuer applies RFC 8414 §2: an http(s) URL with a host and no
// query or fragment (http is allowed for local development).
func validateIssuer(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Hostname() == "" {
		return errors.New("must be an absolute https URL with a host")
	}
	// url.Parse drops an empty fragment ("…#"), so look for '#' itself.
	if u.RawQuery != "" || u.ForceQuery || strings.Contains(s, "#") || u.User != nil {
		return errors.New("must have no query, fragment or user info")
	}
	return nil
}

func (a *App) storePath() (string, error) {
	path := filepath.Join(caddy.AppDataDir(), "gatehouse", "gatehouse.db")
	if a.Storage != nil && a.Storage.Path != "" {
		path = a.Storage.Path
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("gatehouse storage path %q: %w", path, err)
	}
	return filepath.Clean(abs), nil
}

// Start begins pruning revocations whose tokens have expired anyway.
func (a *App) Start() error {
	ctx, cancel := context.WithCancel(context.Background())
	a.stop = cancel
	go a.pruneLoop(ctx)
	return nil
}

func (a *App) pruneLoop(ctx context.Context) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if err := a.auth.Revocations().Prune(ctx, now); err != nil {
				a.logger.Error("pruning revocations", zap.Error(err))
			}
		}
	}
}

// Stop stops the background work.
func (a *App) Stop() error {
	if a.stop != nil {
		a.stop()
	}
	return nil
}

// Cleanup releases this config's use of the shared store.
func (a *App) Cleanup() error {
	if a.poolKey == "" {
		return nil
	}
	_, err := stores.Delete(a.poolKey)
	return err
}

// Authority is the token authority of this configuration.
func (a *App) Authority() *introspection.Authority { return a.auth }

// Logger is the app's logger.
func (a *App) Logger() *zap.Logger { return a.logger }

// Interface guards.
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
	_ caddy.Destructor   = (*state)(nil)
)
