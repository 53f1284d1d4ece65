package clientauth

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/sync/singleflight"
)

// Limits of jwks_uri documents and their cache.
const (
	maxRemoteJWKSBytes = 64 << 10
	remoteJWKSTTL      = 5 * time.Minute
	remoteJWKSTimeout  = 5 * time.Second
	remoteJWKSRefetch  = 30 * time.Second // earliest refetch for an unknown kid
	remoteJWKSFailTTL  = 10 * time.Second // a failed fetch is not retried before
)

// ParseJWKS parses a client's JWK Set, keeping only public asymmetric keys:
// a symmetric ("oct") key or a private key is refused outright, so an HMAC
// key can never stand in for a public one (RFC 8725 §2.1).
func ParseJWKS(raw []byte) (*jose.JSONWebKeySet, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		return nil, fmt.Errorf("%w: jwks: %v", ErrAssertion, err)
	}
	if len(set.Keys) == 0 {
		return nil, assertionErr("jwks has no keys")
	}
	for _, k := range set.Keys {
		if !k.Valid() || !k.IsPublic() {
			return nil, assertionErr("jwks may hold only valid public RSA, EC or OKP keys")
		}
	}
	return &set, nil
}

// RemoteKeys fetches and caches clients' jwks_uri documents: bounded in
// time and size, one fetch at a time per URI, never following the JWS's
// own jku/x5u (RFC 8725 §3.10).
type RemoteKeys struct {
	client *http.Client
	group  singleflight.Group
	mu     sync.Mutex
	cache  map[string]remoteEntry
	now    func() time.Time
}

type remoteEntry struct {
	set     *jose.JSONWebKeySet
	err     error // a failed fetch, remembered for remoteJWKSFailTTL
	fetched time.Time
}

// NewRemoteKeys returns a jwks_uri fetcher using client (a client with a
// timeout is made if nil).
func NewRemoteKeys(client *http.Client) *RemoteKeys {
	c := http.Client{Timeout: remoteJWKSTimeout}
	if client != nil {
		c = *client
	}
	// No redirects: the https-only rule would hold for the first hop only,
	// and a redirect could point the fetch at an internal address.
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &RemoteKeys{client: &c, cache: make(map[string]remoteEntry), now: time.Now}
}

// Get returns the key set at uri, from cache while fresh. A kid the cached
// set lacks (the client rotated its keys) refetches, at most every
// remoteJWKSRefetch.
func (r *RemoteKeys) Get(ctx context.Context, uri, kid string) (*jose.JSONWebKeySet, error) {
	r.mu.Lock()
	e, ok := r.cache[uri]
	r.mu.Unlock()
	age := r.now().Sub(e.fetched)
	switch {
	case ok && e.err != nil && age < remoteJWKSFailTTL:
		return nil, e.err // don't refetch a failing jwks_uri on every assertion
	case ok && e.err == nil && age < remoteJWKSTTL && (kid == "" || len(e.set.Key(kid)) > 0 || age < remoteJWKSRefetch):
		return e.set, nil
	}
	// One fetch per URI at a time, not tied to the first caller's request:
	// its going away must not fail the others.
	ch := r.group.DoChan(uri, func() (any, error) {
		set, err := r.fetch(context.Background(), uri)
		r.mu.Lock()
		r.cache[uri] = remoteEntry{set: set, err: err, fetched: r.now()}
		r.mu.Unlock()
		return set, err
	})
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.(*jose.JSONWebKeySet), nil
	}
}

func (r *RemoteKeys) fetch(ctx context.Context, uri string) (*jose.JSONWebKeySet, error) {
	if !strings.HasPrefix(uri, "https://") {
		return nil, assertionErr("jwks_uri must be https")
	}
	ctx, cancel := context.WithTimeout(ctx, remoteJWKSTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return nil, assertionErr("jwks_uri unusable")
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, assertionErr("fetching jwks_uri failed")
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, assertionErr("jwks_uri answered %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxRemoteJWKSBytes+1))
	if err != nil || len(body) > maxRemoteJWKSBytes {
		return nil, assertionErr("jwks_uri document unreadable or over %d bytes", maxRemoteJWKSBytes)
	}
	return ParseJWKS(body)
}
