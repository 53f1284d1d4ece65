package caddymodule

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/gatehousehq/gatehouse/clientstore"
	"github.com/gatehousehq/gatehouse/introspection"
	"github.com/gatehousehq/gatehouse/introspection/clientauth"
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
	// Default: 10000 (introspection.DefaultIdentityCacheSize).
	IdentityCacheSize int `json:"identity_cache_size,omitempty"`

	// Access-token format for clients that do not choose one with their
	// access_token_strategy: "opaque" (default) or "jwt" (RFC 9068).
	AccessTokenStrategy string `json:"access_token_strategy,omitempty"`

	// Scopes advertised as scopes_supported in the RFC 8414 metadata.
	ScopesSupported []string `json:"scopes_supported,omitempty"`

	// Token requests handled at once. Default: 16 per CPU (GOMAXPROCS).
	TokenConcurrency int `json:"token_concurrency,omitempty"`

	// Token requests that may wait, at most 250ms each, when
	// token_concurrency are running; any more are refused at once with
	// 503 and Retry-After. Default: 8 per token_concurrency.
	TokenQueue int `json:"token_queue,omitempty"`

	auth       *introspection.Authority
	remoteKeys *clientauth.RemoteKeys
	tokens     *admission
	state      *state
	poolKey    string
	logger     *zap.Logger
	stop       context.CancelFunc
}

// Storage selects the store.
type Storage struct {
	// Backend is "bolt" (the default: one node, one file) or "etcd" (a
	// cluster of nodes sharing clients, keys and revocations).
	Backend string `json:"backend,omitempty"`
	// Path of the bbolt file. Default: gatehouse/gatehouse.db in Caddy's
	// data directory.
	Path string `json:"path,omitempty"`
	// Etcd configures the etcd backend.
	Etcd *EtcdStorage `json:"etcd,omitempty"`
}

// EtcdStorage says how to reach etcd. Every field takes placeholders such
// as {env.ETCD_PASSWORD}, resolved when the config is loaded.
type EtcdStorage struct {
	// Client URLs of the etcd members, e.g. https://10.0.0.1:2379.
	Endpoints []string `json:"endpoints,omitempty"`
	// Prefix of every Gatehouse key, so several deployments share one
	// etcd. Always ends with "/". Default: /gatehouse/.
	Prefix string `json:"prefix,omitempty"`
	// Credentials of etcd's authentication, if enabled.
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// TLS to etcd (client certificate and/or a private CA).
	TLS *EtcdTLS `json:"tls,omitempty"`
	// How long to wait for a connection. Default: 5s.
	DialTimeout caddy.Duration `json:"dial_timeout,omitempty"`
	// How long a read or write may take before it fails: admin writes
	// then answer 503. Default: 5s.
	RequestTimeout caddy.Duration `json:"request_timeout,omitempty"`
	// The local snapshot: a file where the node keeps its last consistent
	// view of the store (clients, keys, revocations), so that it can start
	// while etcd is unreachable. It holds key material; it is written with
	// mode 0600. Default: <Caddy data dir>/gatehouse/etcd-<digest of
	// endpoints and prefix>.snapshot; "off": none.
	Snapshot string `json:"snapshot,omitempty"`
}

// EtcdTLS holds PEM files for TLS to etcd.
type EtcdTLS struct {
	// CA certificate(s) that sign etcd's server certificates (default:
	// the system roots).
	CA string `json:"ca,omitempty"`
	// Client certificate and its key, for etcd's client-cert auth.
	Cert string `json:"cert,omitempty"`
	Key  string `json:"key,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "gatehouse",
		New: func() caddy.Module { return new(App) },
	}
}

// stores holds the open stores, keyed by what identifies the backend: the
// cleaned absolute file path of a bbolt store, the endpoints and prefix of
// an etcd store. Config generations share one open store: one bbolt lock,
// one etcd client and one watch.
var stores = caddy.NewUsagePool()

// state is what config generations share for one store.
type state struct {
	store       clientstore.Store
	clients     *clientstore.Cache
	sealer      *introspection.Sealer
	revocations *introspection.Revocations
	sync        *clientstore.Sync
	logger      *zap.Logger

	mu      sync.Mutex
	signers map[string]*introspection.Signer // by algorithm
	keys    clientstore.Store                // what key rings load from: the store, or its local snapshot

	stopSnapshots func() // stops keeping the local snapshot; nil: none kept

	// Brute-force protection of client authentication, kept across config
	// reloads and shared by every gatehouse_server: per address, and per
	// client_id guessed from one address.
	limits *clientauth.Limits

	metrics *requestMetrics
}

// Destruct stops the watch and closes the store when no config uses it
// any more.
func (s *state) Destruct() error {
	if s.stopSnapshots != nil {
		s.stopSnapshots()
	}
	s.sync.Stop()
	return s.store.Close()
}

// signer returns the shared signer for alg, loading its key ring once and
// following it in the store (rotations made on other nodes).
func (s *state) signer(ctx context.Context, alg string) (*introspection.Signer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sg, ok := s.signers[alg]; ok {
		return sg, nil
	}
	sg, err := introspection.LoadSigner(ctx, s.keys, alg)
	if err != nil {
		return nil, err
	}
	sg.Follow(s.sync, s.logger)
	s.signers[alg] = sg
	return sg, nil
}

// Provision opens (or shares) the store and builds the token authority.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	if err := a.validate(); err != nil {
		return err
	}
	key, desc, open, err := a.storeOpener()
	if err != nil {
		return err
	}
	val, _, err := stores.LoadOrNew(key, func() (caddy.Destructor, error) {
		return open(ctx, a.logger)
	})
	if err != nil {
		return fmt.Errorf("gatehouse storage: %w", err)
	}
	a.poolKey = key
	st := val.(*state)
	a.state = st
	signer, err := st.signer(ctx, a.SigningAlg)
	if err != nil {
		return err
	}
	a.auth = introspection.NewAuthority(introspection.Config{
		Issuer:              a.Issuer,
		TokenTTL:            time.Duration(a.TokenTTL),
		IdentityTTL:         time.Duration(a.IdentityTTL),
		AccessTokenStrategy: a.AccessTokenStrategy,
	}, st.clients, st.sealer, signer, st.revocations)
	a.remoteKeys = clientauth.NewRemoteKeys(nil)
	a.tokens = tokenAdmission(a.TokenConcurrency, a.TokenQueue)
	if err := a.registerMetrics(ctx); err != nil {
		return err
	}
	a.logger.Info("gatehouse ready", zap.String("storage", desc), zap.String("issuer", a.Issuer),
		zap.String("signing_alg", signer.Alg()), zap.String("kid", signer.KeyID()))
	return nil
}

type stateOpener func(ctx context.Context, logger *zap.Logger) (*state, error)

// storeOpener returns the pool key of the configured store, a description
// for logs, and how to open it.
func (a *App) storeOpener() (string, string, stateOpener, error) {
	if a.Storage == nil || a.Storage.Backend != "etcd" {
		path, err := a.storePath()
		if err != nil {
			return "", "", nil, err
		}
		return path, "bolt " + path, func(ctx context.Context, logger *zap.Logger) (*state, error) {
			return openState(ctx, path, logger)
		}, nil
	}
	cfg, err := a.Storage.Etcd.config()
	if err != nil {
		return "", "", nil, err
	}
	desc := "etcd " + strings.Join(cfg.Endpoints, ",") + " prefix " + cfg.Prefix
	// The key names the backend (endpoints and prefix); a digest of the
	// rest makes changed credentials or timeouts open a new client, while
	// an unchanged config shares the client and its watch.
	h := sha256.New()
	for _, v := range []string{cfg.Username, cfg.Password, a.Storage.Etcd.tlsKey(),
		cfg.DialTimeout.String(), cfg.RequestTimeout.String()} {
		h.Write([]byte(v))
		h.Write([]byte{0})
	}
	key := fmt.Sprintf("etcd %s %s #%x", strings.Join(cfg.Endpoints, ","), cfg.Prefix, h.Sum(nil)[:8])
	snapshot := a.Storage.Etcd.Snapshot
	switch snapshot {
	case "off":
		snapshot = ""
	case "":
		id := sha256.Sum256([]byte(strings.Join(cfg.Endpoints, ",") + "\x00" + cfg.Prefix))
		snapshot = filepath.Join(caddy.AppDataDir(), "gatehouse", fmt.Sprintf("etcd-%x.snapshot", id[:8]))
	}
	return key, desc, func(ctx context.Context, logger *zap.Logger) (*state, error) {
		cfg.Logger = logger.Named("etcd").WithOptions(zap.IncreaseLevel(zap.ErrorLevel))
		store, err := clientstore.NewEtcd(cfg)
		if err != nil {
			return nil, err
		}
		return openEtcdState(ctx, store, snapshot, logger)
	}, nil
}

// openEtcdState loads the state of an etcd store and keeps the local
// snapshot at path (if any) current. If etcd cannot be reached, the node
// starts from the snapshot instead, in the mode of a node that lost etcd
// while running: it serves from memory, writes fail, its view ages, and
// the watch takes up from the snapshot's revision once etcd answers. It
// owns store: on failure it closes it.
func openEtcdState(ctx context.Context, store *clientstore.EtcdStore, path string, logger *zap.Logger) (*state, error) {
	if logger == nil {
		logger = zap.NewNop()
	}
	var from *clientstore.Snapshot
	var asOf time.Time
	err := store.Init(ctx)
	if errors.Is(err, clientstore.ErrUnavailable) && path != "" {
		var serr error
		if from, asOf, serr = clientstore.ReadSnapshotFile(path); serr != nil {
			err = fmt.Errorf("%w; no local snapshot to start from: %v", err, serr)
		} else {
			logger.Warn("etcd unreachable: starting from the local snapshot", zap.String("snapshot", path),
				zap.Time("view_as_of", asOf), zap.Int64("revision", from.Revision), zap.Int("clients", len(from.Clients)), zap.Error(err))
			err = nil
		}
	}
	var st *state
	if err == nil {
		st, err = loadStateFrom(ctx, store, from, asOf, logger)
	}
	if err != nil {
		store.Close()
		return nil, err
	}
	if path != "" {
		st.keepSnapshot(path)
	}
	return st, nil
}

// snapshotInterval is how often the local snapshot is written again while
// the view changes.
const snapshotInterval = 10 * time.Second

// keepSnapshot writes the view to the local snapshot at path now and then
// whenever it changed since the last write, checking every
// snapshotInterval.
func (s *state) keepSnapshot(path string) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	s.stopSnapshots = func() {
		cancel()
		<-done
	}
	go func() {
		defer close(done)
		written := int64(-1)
		t := time.NewTicker(snapshotInterval)
		defer t.Stop()
		for {
			if n := s.sync.Changes(); n != written {
				if err := clientstore.WriteSnapshotFile(path, s.sync.Export()); err != nil {
					s.logger.Error("keeping the local snapshot", zap.Error(err))
				} else {
					written = n
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// config resolves placeholders and builds the client configuration.
func (e *EtcdStorage) config() (clientstore.EtcdConfig, error) {
	if e == nil {
		return clientstore.EtcdConfig{}, errors.New("gatehouse: storage etcd needs endpoints")
	}
	repl := caddy.NewReplacer()
	cfg := clientstore.EtcdConfig{
		Prefix:         clientstore.NormalizeEtcdPrefix(repl.ReplaceKnown(e.Prefix, "")),
		Username:       repl.ReplaceKnown(e.Username, ""),
		Password:       repl.ReplaceKnown(e.Password, ""),
		DialTimeout:    time.Duration(e.DialTimeout),
		RequestTimeout: time.Duration(e.RequestTimeout),
	}
	for _, ep := range e.Endpoints {
		ep = repl.ReplaceKnown(ep, "")
		u, err := url.Parse(ep)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return cfg, fmt.Errorf("gatehouse: storage etcd: endpoint %q is not an http(s)://host:port URL", ep)
		}
		cfg.Endpoints = append(cfg.Endpoints, ep)
	}
	if len(cfg.Endpoints) == 0 {
		return cfg, errors.New("gatehouse: storage etcd needs endpoints")
	}
	if !strings.HasPrefix(cfg.Prefix, "/") {
		return cfg, fmt.Errorf("gatehouse: storage etcd: prefix %q must start with /", cfg.Prefix)
	}
	if e.DialTimeout < 0 || e.RequestTimeout < 0 {
		return cfg, errors.New("gatehouse: storage etcd: timeouts must not be negative")
	}
	if e.TLS != nil {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if ca := repl.ReplaceKnown(e.TLS.CA, ""); ca != "" {
			pem, err := os.ReadFile(ca)
			if err != nil {
				return cfg, fmt.Errorf("gatehouse: storage etcd: tls ca: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return cfg, fmt.Errorf("gatehouse: storage etcd: tls ca %s: no PEM certificate", ca)
			}
		}
		cert, key := repl.ReplaceKnown(e.TLS.Cert, ""), repl.ReplaceKnown(e.TLS.Key, "")
		if (cert == "") != (key == "") {
			return cfg, errors.New("gatehouse: storage etcd: tls cert and key go together")
		}
		if cert != "" {
			pair, err := tls.LoadX509KeyPair(cert, key)
			if err != nil {
				return cfg, fmt.Errorf("gatehouse: storage etcd: tls cert/key: %w", err)
			}
			tc.Certificates = []tls.Certificate{pair}
		}
		cfg.TLS = tc
	}
	return cfg, nil
}

func (e *EtcdStorage) tlsKey() string {
	if e.TLS == nil {
		return ""
	}
	return e.TLS.CA + "\x00" + e.TLS.Cert + "\x00" + e.TLS.Key
}

func openState(ctx context.Context, path string, logger *zap.Logger) (*state, error) {
	store, err := clientstore.OpenBolt(path, 0)
	if err != nil {
		return nil, err
	}
	st, err := openStateOn(ctx, store, logger)
	if err != nil {
		return nil, err
	}
	// The load read the whole file; nothing else has the store yet.
	if err := store.Reopen(); err != nil {
		st.Destruct()
		return nil, err
	}
	return st, nil
}

// openStateOn loads clients, keys and revocations of an open store and,
// for a shared store (etcd), starts following its changes. It owns store:
// on failure it closes it.
func openStateOn(ctx context.Context, store clientstore.Store, logger *zap.Logger) (*state, error) {
	st, err := loadState(ctx, store, logger)
	if err != nil {
		store.Close()
		return nil, err
	}
	return st, nil
}

func loadState(ctx context.Context, store clientstore.Store, logger *zap.Logger) (*state, error) {
	return loadStateFrom(ctx, store, nil, time.Time{}, logger)
}

// loadStateFrom is loadState from a local snapshot of an etcd store, as of
// asOf, if from is not nil.
func loadStateFrom(ctx context.Context, store clientstore.Store, from *clientstore.Snapshot, asOf time.Time, logger *zap.Logger) (*state, error) {
	if logger == nil {
		logger = zap.NewNop()
	}
	st := &state{store: store, keys: store, logger: logger, signers: map[string]*introspection.Signer{},
		limits:  clientauth.NewLimits(),
		metrics: newRequestMetrics(),
	}
	if from != nil {
		es, ok := store.(*clientstore.EtcdStore)
		if !ok {
			return nil, fmt.Errorf("gatehouse: store %T does not start from a snapshot", store)
		}
		st.keys = clientstore.FromSnapshot(es, from)
	}
	var err error
	if st.clients, err = clientstore.NewCache(ctx, st.keys); err == nil {
		if st.sealer, err = introspection.LoadSealer(ctx, st.keys); err == nil {
			st.revocations, err = introspection.LoadRevocations(ctx, st.keys)
		}
	}
	if err != nil {
		return nil, err
	}
	snap, ok := store.(clientstore.Snapshotter)
	if !ok {
		return nil, fmt.Errorf("gatehouse: store %T cannot be read whole", store)
	}
	st.sync = clientstore.NewSync(snap, logger)
	st.sync.Follow(st.clients)
	st.sync.Follow(st.revocations)
	st.sealer.Follow(st.sync, logger)
	if from != nil {
		err = st.sync.StartFrom(ctx, from, asOf)
	} else {
		err = st.sync.Start(ctx)
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
	if a.TokenTTL < 0 || a.IdentityTTL < 0 || a.IdentityCacheSize < 0 || a.TokenConcurrency < 0 || a.TokenQueue < 0 {
		return errors.New("gatehouse: token_ttl, identity_ttl, identity_cache_size, token_concurrency and token_queue must not be negative")
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
	if a.Storage != nil {
		switch a.Storage.Backend {
		case "", "bolt":
			if a.Storage.Etcd != nil {
				return errors.New("gatehouse: storage etcd settings given with the bolt backend")
			}
		case "etcd":
			if a.Storage.Path != "" {
				return errors.New("gatehouse: storage path given with the etcd backend")
			}
			if _, err := a.Storage.Etcd.config(); err != nil {
				return err
			}
		default:
			return fmt.Errorf("gatehouse: unknown storage backend %q (supported: bolt, etcd)", a.Storage.Backend)
		}
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
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		return errors.New("must be https (RFC 8414 §2); plain http only for localhost")
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
