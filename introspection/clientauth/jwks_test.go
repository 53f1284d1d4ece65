package clientauth

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehousehq/gatehouse/clientstore"
	"github.com/gatehousehq/gatehouse/clientstore/clocktest"
	"github.com/go-jose/go-jose/v4"
)

// RFC 8725 §2.1, §3.1: a client's key set holds public asymmetric keys
// only. A symmetric key would let an HMAC stand in for a signature; a
// private key means the operator registered a secret in the wrong place.
func TestParseJWKS(t *testing.T) {
	keys := keysOfEachAlg(t)
	var publics []jose.JSONWebKey
	for _, k := range keys {
		publics = append(publics, k.public())
	}
	private := jose.JSONWebKey{Key: keys[2].priv, KeyID: "priv", Algorithm: string(keys[2].alg)}
	oct := jose.JSONWebKey{Key: []byte(strings.Repeat("s", 32)), KeyID: "oct", Algorithm: "HS256"}
	cases := []struct {
		name string
		raw  []byte
		ok   bool
	}{
		{"one public key of each allowed kind (RSA, EC, OKP)", jwksOf(t, publics...), true},
		{"a single public key", jwksOf(t, publics[0]), true},
		{"an oct key", jwksOf(t, oct), false},
		{"public keys and an oct key", jwksOf(t, append(append([]jose.JSONWebKey{}, publics...), oct)...), false},
		{"a private EC key", jwksOf(t, private), false},
		{"a private RSA key", jwksOf(t, jose.JSONWebKey{Key: keys[0].priv, KeyID: "rsa-priv"}), false},
		{"a private Ed25519 key", jwksOf(t, jose.JSONWebKey{Key: keys[3].priv, KeyID: "ed-priv"}), false},
		{"hand-written oct key", []byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0","alg":"HS256"}]}`), false},
		{"no keys", []byte(`{"keys":[]}`), false},
		{"keys missing", []byte(`{}`), false},
		{"not JSON", []byte(`keys`), false},
		{"unknown kty", []byte(`{"keys":[{"kty":"XYZ","x":"AA"}]}`), false},
		{"EC point not on the curve", []byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"AQ","y":"AQ"}]}`), false},
		{"empty", nil, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			set, err := ParseJWKS(tc.raw)
			if tc.ok {
				if err != nil || set == nil || len(set.Keys) == 0 {
					t.Fatalf("ParseJWKS = %v, %v; want the key set", set, err)
				}
				for _, k := range set.Keys {
					if !k.IsPublic() {
						t.Errorf("ParseJWKS returned a non-public key %q", k.KeyID)
					}
				}
				return
			}
			if err == nil || set != nil {
				t.Fatalf("ParseJWKS accepted %s", tc.raw)
			}
			if !errors.Is(err, ErrAssertion) {
				t.Fatalf("ParseJWKS error %v does not wrap ErrAssertion", err)
			}
		})
	}
}

// jwksServer serves a JWK Set over TLS and counts the fetches.
type jwksServer struct {
	*httptest.Server
	hits   atomic.Int64
	mu     sync.Mutex
	status int
	body   []byte
}

func newJWKSServer(t *testing.T, body []byte) *jwksServer {
	s := &jwksServer{status: http.StatusOK, body: body}
	s.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		status, body := s.status, s.body
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.WriteHeader(status)
		w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(status int, body []byte) {
	s.mu.Lock()
	s.status, s.body = status, body
	s.mu.Unlock()
}

// jwks_uri (RFC 7591 §2, used by RFC 7523 clients): fetched over https
// only, once per TTL however many assertions it verifies, bounded in size,
// and only a 200 with a valid public key set counts.
func TestAssertionRemoteJWKS(t *testing.T) {
	ctx := context.Background()
	k := keysOfEachAlg(t)[2]
	srv := newJWKSServer(t, jwksOf(t, k.public()))

	ae := newAssertionEnv(t)
	remote := NewRemoteKeys(srv.Client())
	rclock := clocktest.New(ae.clock.Now())
	remote.now = rclock.Now
	ae.rebuild(remote)
	if _, _, err := ae.cache.Create(ctx, &clientstore.Client{
		ID: "svc", TokenEndpointAuthMethod: clientstore.AuthMethodPrivateKeyJWT, JWKSURI: srv.URL + "/jwks.json",
	}); err != nil {
		t.Fatalf("creating jwks_uri client: %v", err)
	}

	t.Run("fetched once for many verifications", func(t *testing.T) {
		for i := 0; i < 10; i++ {
			c, err := ae.v.Verify(ctx, signAssertion(t, k, k.kid, claimsFor("svc", ae.clock.Now()), nil), "")
			if err != nil || c.ID != "svc" {
				t.Fatalf("assertion %d: %v, %v; want client svc", i, clientID(c), err)
			}
		}
		if n := srv.hits.Load(); n != 1 {
			t.Fatalf("jwks_uri fetched %d times for 10 assertions, want 1", n)
		}
		c, err := ae.v.Verify(ctx, signAssertion(t, generateAssertionKey(t, k.alg, k.kid), k.kid, claimsFor("svc", ae.clock.Now()), nil), "")
		refused(t, c, err, "assertion by a key not in the fetched set")
		if n := srv.hits.Load(); n != 1 {
			t.Fatalf("an unknown key caused a refetch (%d fetches): a forger could make the server fetch at will", n)
		}
	})

	t.Run("refetched after the cache TTL", func(t *testing.T) {
		rclock.Advance(remoteJWKSTTL + time.Second)
		before := srv.hits.Load()
		if c, err := ae.v.Verify(ctx, signAssertion(t, k, k.kid, claimsFor("svc", ae.clock.Now()), nil), ""); err != nil || c.ID != "svc" {
			t.Fatalf("after TTL: %v, %v; want client svc", clientID(c), err)
		}
		if n := srv.hits.Load() - before; n != 1 {
			t.Fatalf("fetches after the TTL passed: %d, want 1", n)
		}
	})

	fresh := func() *RemoteKeys { return NewRemoteKeys(srv.Client()) }
	get := func(t *testing.T, uri string) (*jose.JSONWebKeySet, error) {
		t.Helper()
		return fresh().Get(ctx, uri, "")
	}

	t.Run("64 KiB is the limit", func(t *testing.T) {
		doc := jwksOf(t, k.public())
		padTo := func(n int) []byte {
			return append(append([]byte{}, doc...), []byte(strings.Repeat(" ", n-len(doc)))...)
		}
		srv.set(http.StatusOK, padTo(maxRemoteJWKSBytes))
		if _, err := get(t, srv.URL); err != nil {
			t.Fatalf("a %d-byte document: %v, want accepted", maxRemoteJWKSBytes, err)
		}
		srv.set(http.StatusOK, padTo(maxRemoteJWKSBytes+1))
		if set, err := get(t, srv.URL); err == nil || !errors.Is(err, ErrAssertion) {
			t.Fatalf("a %d-byte document: %v, %v; want refused with ErrAssertion", maxRemoteJWKSBytes+1, set, err)
		}
		srv.set(http.StatusOK, padTo(1<<20))
		if _, err := get(t, srv.URL); err == nil {
			t.Fatal("a 1 MiB document was accepted")
		}
	})

	t.Run("only 200 counts", func(t *testing.T) {
		for _, status := range []int{http.StatusNotFound, http.StatusInternalServerError, http.StatusMovedPermanently, http.StatusNoContent, http.StatusAccepted} {
			srv.set(status, jwksOf(t, k.public()))
			if set, err := get(t, srv.URL); err == nil || !errors.Is(err, ErrAssertion) {
				t.Errorf("status %d: %v, %v; want refused with ErrAssertion", status, set, err)
			}
		}
	})

	t.Run("the remote set obeys the same rules as an inline one", func(t *testing.T) {
		for name, body := range map[string][]byte{
			"oct key":     jwksOf(t, jose.JSONWebKey{Key: []byte(strings.Repeat("s", 32)), KeyID: "oct"}),
			"private key": jwksOf(t, jose.JSONWebKey{Key: k.priv, KeyID: k.kid}),
			"not JSON":    []byte("<html>"),
			"empty":       nil,
		} {
			srv.set(http.StatusOK, body)
			if set, err := get(t, srv.URL); err == nil || !errors.Is(err, ErrAssertion) {
				t.Errorf("%s: %v, %v; want refused with ErrAssertion", name, set, err)
			}
		}
	})

	t.Run("only https", func(t *testing.T) {
		plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			t.Errorf("the http:// jwks_uri was fetched")
			w.Write(jwksOf(t, k.public()))
		}))
		defer plain.Close()
		for _, uri := range []string{plain.URL, strings.Replace(srv.URL, "https://", "http://", 1), "ftp://example.com/jwks", "file:///etc/passwd", "//example.com/jwks", ""} {
			if set, err := fresh().Get(ctx, uri, ""); err == nil || !errors.Is(err, ErrAssertion) {
				t.Errorf("jwks_uri %q: %v, %v; want refused with ErrAssertion", uri, set, err)
			}
		}
	})

	t.Run("a failing jwks_uri fails the assertion, not the server", func(t *testing.T) {
		srv.set(http.StatusInternalServerError, nil)
		rclock.Advance(remoteJWKSTTL + time.Second)
		c, err := ae.v.Verify(ctx, signAssertion(t, k, k.kid, claimsFor("svc", ae.clock.Now()), nil), "")
		refused(t, c, err, "assertion while jwks_uri answers 500")
	})
}

// RFC 8725 §3.10 (and RFC 7515 §4.1.2, §4.1.5): the server never fetches
// keys from a URL the assertion itself names.
func TestAssertionNeverFollowsJKU(t *testing.T) {
	attacker := generateAssertionKey(t, jose.ES256, "attacker")
	evil := newJWKSServer(t, jwksOf(t, attacker.public()))
	ae := newAssertionEnv(t)
	ae.rebuild(NewRemoteKeys(evil.Client()))
	k := keysOfEachAlg(t)[2]
	ae.pkjwtClient("svc", jwksOf(t, k.public()))
	for _, h := range []string{"jku", "x5u"} {
		opts := (&jose.SignerOptions{}).WithHeader(jose.HeaderKey(h), evil.URL+"/jwks.json")
		a := signAssertion(t, attacker, attacker.kid, claimsFor("svc", ae.clock.Now()), opts)
		c, err := ae.v.Verify(context.Background(), a, "")
		refused(t, c, err, "assertion signed by the key at its own "+h)
	}
	if n := evil.hits.Load(); n != 0 {
		t.Fatalf("the URL in the assertion's header was fetched %d times", n)
	}
}

// A jwks_uri that redirects (perhaps to an internal plain-http address) is
// not followed (RFC 8725 §3.10 spirit: fetch only what was registered).
func TestJWKSURIRedirectNotFollowed(t *testing.T) {
	var internalHits atomic.Int64
	internal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		internalHits.Add(1)
		w.WriteHeader(http.StatusTeapot)
	}))
	defer internal.Close()
	ext := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, internal.URL+"/latest/meta-data/", http.StatusFound)
	}))
	defer ext.Close()
	rk := NewRemoteKeys(ext.Client())
	if _, err := rk.Get(context.Background(), ext.URL+"/jwks.json", ""); err == nil {
		t.Fatal("a redirecting jwks_uri gave a key set")
	}
	if n := internalHits.Load(); n != 0 {
		t.Errorf("the redirect target was fetched %d time(s), want never", n)
	}
}

// A failing jwks_uri is remembered for a while instead of being fetched
// again for every assertion.
func TestJWKSURIFailureCached(t *testing.T) {
	var hits atomic.Int64
	ext := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer ext.Close()
	rk := NewRemoteKeys(ext.Client())
	clock := fixedNow
	rk.now = func() time.Time { return clock }
	for range 50 {
		if _, err := rk.Get(context.Background(), ext.URL+"/jwks.json", "k1"); err == nil {
			t.Fatal("a failing jwks_uri gave a key set")
		}
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("50 lookups made %d fetches, want 1", n)
	}
	clock = clock.Add(remoteJWKSFailTTL + time.Second)
	rk.Get(context.Background(), ext.URL+"/jwks.json", "k1")
	if n := hits.Load(); n != 2 {
		t.Errorf("after the failure TTL: %d fetches, want 2 (retried)", n)
	}
}
