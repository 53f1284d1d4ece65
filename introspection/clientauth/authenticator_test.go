package clientauth

// Client authentication as the endpoints run it: the registered method
// only, a disabled client refused, and failures slowed down per address
// and per client_id from one address (RFC 6749 §2.3.1, RFC 6819
// §5.1.4.2.3) without one address locking a client out for everybody.

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gatehousehq/gatehouse/clientstore"
	"github.com/go-jose/go-jose/v4"
)

// authEnv is an env with an Authenticator and a client of each method.
type authEnv struct {
	*env
	a       *Authenticator
	secrets map[string]string // client id → secret
	key     assertionKey      // of the private_key_jwt client "pk"
}

func newAuthEnv(t *testing.T) *authEnv {
	t.Helper()
	ae := &authEnv{env: newEnv(t), secrets: map[string]string{}}
	ae.key = generateAssertionKey(t, jose.ES256, "k1")
	ctx := context.Background()
	for _, c := range []*clientstore.Client{
		{ID: "basic", Scope: testScope},
		{ID: "post", Scope: testScope, TokenEndpointAuthMethod: clientstore.AuthMethodPost},
		{ID: "off", Scope: testScope, Disabled: true},
		{ID: "pk", Scope: testScope, TokenEndpointAuthMethod: clientstore.AuthMethodPrivateKeyJWT, JWKS: jwksOf(t, ae.key.public())},
	} {
		_, secret, err := ae.cache.Create(ctx, c)
		if err != nil {
			t.Fatalf("creating client %q: %v", c.ID, err)
		}
		ae.secrets[c.ID] = secret
	}
	ae.a = NewAuthenticator(ae.cache, NewAssertions(ae.cache, ae.rev, NewRemoteKeys(nil), testIssuer, testTokenEndpoint), NewLimits())
	return ae
}

func (ae *authEnv) basic(id, secret string) Credentials {
	return Credentials{Method: clientstore.AuthMethodBasic, ClientID: id, Secret: secret}
}

func (ae *authEnv) assertion(id string) Credentials {
	return Credentials{Method: clientstore.AuthMethodPrivateKeyJWT, AssertionType: ClientAssertionType,
		Assertion: signAssertion(ae.t, ae.key, ae.key.kid, claimsFor(id, time.Now()), nil)}
}

const addr = "192.0.2.1"

func TestAuthenticate(t *testing.T) {
	ae := newAuthEnv(t)
	ctx := context.Background()
	wrongType := ae.assertion("pk")
	wrongType.AssertionType = "urn:ietf:params:oauth:client-assertion-type:saml2-bearer"
	replayed := ae.assertion("pk")
	if _, err := ae.a.Authenticate(ctx, replayed, addr); err != nil {
		t.Fatalf("first use of an assertion: %v", err)
	}
	cases := []struct {
		name       string
		creds      Credentials
		wantClient string // the client returned, with or without an error
		err        error  // nil: authenticated
	}{
		{name: "client_secret_basic", creds: ae.basic("basic", ae.secrets["basic"]), wantClient: "basic"},
		{name: "client_secret_post", creds: Credentials{Method: clientstore.AuthMethodPost, ClientID: "post", Secret: ae.secrets["post"]}, wantClient: "post"},
		{name: "private_key_jwt", creds: ae.assertion("pk"), wantClient: "pk"},
		{name: "wrong secret", creds: ae.basic("basic", "wrong"), err: ErrFailed},
		{name: "another client's secret", creds: ae.basic("basic", ae.secrets["post"]), err: ErrFailed},
		{name: "unknown client", creds: ae.basic("ghost", "x"), err: ErrFailed},
		{name: "no credentials", creds: Credentials{}, err: ErrNoCredentials},
		{name: "disabled client", creds: ae.basic("off", ae.secrets["off"]), wantClient: "off", err: ErrDisabled},
		{name: "post client with Basic", creds: ae.basic("post", ae.secrets["post"]), wantClient: "post", err: &MethodError{Registered: clientstore.AuthMethodPost}},
		{name: "basic client with post", creds: Credentials{Method: clientstore.AuthMethodPost, ClientID: "basic", Secret: ae.secrets["basic"]}, wantClient: "basic", err: &MethodError{Registered: clientstore.AuthMethodBasic}},
		{name: "wrong assertion type", creds: wrongType, err: ErrAssertionType},
		{name: "replayed assertion", creds: replayed, err: ErrAssertion},
		{name: "assertion of a secret client", creds: ae.assertion("basic"), err: ErrAssertion},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ae.a.Authenticate(ctx, tc.creds, addr)
			var me *MethodError
			switch {
			case tc.err == nil && err != nil:
				t.Fatalf("Authenticate: %v, want client %s", err, tc.wantClient)
			case errors.As(tc.err, &me):
				var got *MethodError
				if !errors.As(err, &got) || *got != *me {
					t.Fatalf("Authenticate: %v, want %v", err, tc.err)
				}
			case tc.err != nil && !errors.Is(err, tc.err):
				t.Fatalf("Authenticate: %v, want %v", err, tc.err)
			}
			if got := clientID(c); (tc.wantClient == "" && c != nil) || (tc.wantClient != "" && got != tc.wantClient) {
				t.Fatalf("Authenticate returned client %s, want %q", got, tc.wantClient)
			}
		})
	}
}

// An assertion that cannot be verified now (here: its jwks_uri does not
// answer before the request goes away) is ErrUnavailable, not a refusal.
func TestAuthenticateUnavailable(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the client going away is the point
	srv.StartTLS()
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	ae := newAuthEnv(t)
	ae.a = NewAuthenticator(ae.cache, NewAssertions(ae.cache, ae.rev, NewRemoteKeys(srv.Client()), testIssuer, testTokenEndpoint), NewLimits())
	if _, _, err := ae.cache.Create(context.Background(), &clientstore.Client{
		ID: "uri", TokenEndpointAuthMethod: clientstore.AuthMethodPrivateKeyJWT, JWKSURI: srv.URL + "/jwks.json",
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c, err := ae.a.Authenticate(ctx, ae.assertion("uri"), addr)
	if c != nil || !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrAssertion) {
		t.Fatalf("Authenticate while jwks_uri hangs and the request is gone: %v, %v; want ErrUnavailable", clientID(c), err)
	}
}

// More than 10 failures for a client_id from one address block that pair
// for 5 s, with the right secret too; the client still gets in from
// elsewhere. More than 20 from one address block the address for 30 s,
// for every client_id. A success forgets the pair's failures.
func TestAuthenticateLimits(t *testing.T) {
	ctx := context.Background()
	limited := func(t *testing.T, err error, minWait, maxWait time.Duration) {
		t.Helper()
		var le *LimitedError
		if !errors.As(err, &le) || le.RetryAfter <= minWait || le.RetryAfter > maxWait {
			t.Fatalf("Authenticate: %v, want a *LimitedError with RetryAfter in (%v, %v]", err, minWait, maxWait)
		}
	}

	t.Run("per client_id from one address", func(t *testing.T) {
		ae := newAuthEnv(t)
		right := ae.basic("basic", ae.secrets["basic"])
		for i := range 11 {
			if _, err := ae.a.Authenticate(ctx, ae.basic("basic", "wrong"), addr); !errors.Is(err, ErrFailed) {
				t.Fatalf("failure %d: %v, want ErrFailed", i+1, err)
			}
		}
		_, err := ae.a.Authenticate(ctx, right, addr)
		limited(t, err, 0, 5*time.Second)
		if c, err := ae.a.Authenticate(ctx, right, "198.51.100.7"); err != nil || c.ID != "basic" {
			t.Fatalf("the client from another address: %v, %v; want it authenticated", clientID(c), err)
		}
		if c, err := ae.a.Authenticate(ctx, ae.basic("post", "wrong"), addr); c != nil || !errors.Is(err, ErrFailed) {
			t.Fatalf("another client_id from the blocked pair's address: %v, %v; want it checked (ErrFailed)", clientID(c), err)
		}
	})

	t.Run("per address", func(t *testing.T) {
		ae := newAuthEnv(t)
		for i := range 21 {
			// Junk ids: no per-client key, only the address counts.
			if _, err := ae.a.Authenticate(ctx, ae.basic("junk/id", "x"), addr); !errors.Is(err, ErrFailed) {
				t.Fatalf("failure %d: %v, want ErrFailed", i+1, err)
			}
		}
		_, err := ae.a.Authenticate(ctx, ae.basic("basic", ae.secrets["basic"]), addr)
		limited(t, err, 5*time.Second, 30*time.Second)
		if _, err := ae.a.Authenticate(ctx, ae.basic("basic", ae.secrets["basic"]), "198.51.100.7"); err != nil {
			t.Fatalf("from another address: %v, want authenticated", err)
		}
	})

	t.Run("a success forgets the client_id's failures", func(t *testing.T) {
		ae := newAuthEnv(t)
		for range 2 {
			for range 10 {
				ae.a.Authenticate(ctx, ae.basic("basic", "wrong"), addr)
			}
			if _, err := ae.a.Authenticate(ctx, ae.basic("basic", ae.secrets["basic"]), addr); err != nil {
				t.Fatalf("after 10 failures: %v, want authenticated", err)
			}
		}
	})

	t.Run("failed assertions count too", func(t *testing.T) {
		ae := newAuthEnv(t)
		bad := ae.assertion("pk")
		bad.ClientID = "pk"
		bad.Assertion += "x"
		for range 11 {
			if _, err := ae.a.Authenticate(ctx, bad, addr); !errors.Is(err, ErrAssertion) {
				t.Fatalf("a tampered assertion: %v, want ErrAssertion", err)
			}
		}
		good := ae.assertion("pk")
		good.ClientID = "pk"
		_, err := ae.a.Authenticate(ctx, good, addr)
		limited(t, err, 0, 5*time.Second)
	})
}
