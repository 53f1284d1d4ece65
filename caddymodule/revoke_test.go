package caddymodule

// Conformance tests of POST /oauth2/revoke (RFC 7009) over real HTTP
// against the in-process gateway: §2.1 the request and who may revoke
// what, §2.2 the response, and that a revocation takes effect on the very
// next request everywhere and survives a restart.

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/gatehousehq/gatehouse/introspection"
)

// revoke asks the revocation endpoint to revoke token as c
// (client_secret_basic), with extra form parameters.
func revoke(t *testing.T, c createdClientJSON, token string, extra url.Values) (*http.Response, []byte) {
	t.Helper()
	form := url.Values{"token": {token}}
	for k, v := range extra {
		form[k] = v
	}
	return endpointRequest(t, http.MethodPost, pathRevoke, "", formType, basicOf(c), form.Encode(), nil)
}

// apiStatus calls the protected route (scope orders:read, audience
// http://localhost:9081) with token.
func apiStatus(t *testing.T, token string) int {
	t.Helper()
	resp, _ := callAPI(t, apiURL+"/orders", "Bearer "+token, nil)
	return resp.StatusCode
}

// requireDead asserts that token is refused on the protected route
// (RFC 6750 §3.1 invalid_token) and inactive at introspection.
func requireDead(t *testing.T, rs createdClientJSON, token, why string) {
	t.Helper()
	resp, body := callAPI(t, apiURL+"/orders", "Bearer "+token, nil)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Errorf("%s: protected route %d %q (%s), want 401 invalid_token", why, resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
	}
	iresp, ib := introspect(t, rs, token, "")
	if iresp.StatusCode != 200 || strings.TrimSpace(string(ib)) != `{"active":false}` {
		t.Errorf("%s: introspection %d %s, want {\"active\":false}", why, iresp.StatusCode, ib)
	}
}

// requireAlive asserts that token works on the protected route and is
// active at introspection.
func requireAlive(t *testing.T, rs createdClientJSON, token, why string) {
	t.Helper()
	if s := apiStatus(t, token); s != http.StatusOK {
		t.Errorf("%s: protected route %d, want 200", why, s)
	}
	if resp, b := introspect(t, rs, token, ""); resp.StatusCode != 200 || decodeJSON(t, b)["active"] != true {
		t.Errorf("%s: introspection %d %s, want active", why, resp.StatusCode, b)
	}
}

func TestRevocationRFC7009(t *testing.T) {
	be, _ := newGateway(t)
	rs := createClient(t, `{"client_name":"resource server","introspect":true}`)
	holder := createClient(t, demoClient)
	other := createClient(t, demoClient)

	t.Run("§2.1 the request", func(t *testing.T) {
		tok := fetchToken(t, holder).AccessToken
		form := url.Values{"token": {tok}}.Encode()
		cases := []refusedRequest{
			{name: "no client authentication", body: form, status: 401, errCode: "invalid_client"},
			{name: "wrong secret", authz: basicAuthz(holder.ClientID, "wrong"), body: form, status: 401, errCode: "invalid_client"},
			{name: "the token itself as a bearer credential", authz: "Bearer " + tok, body: form, status: 401, errCode: "invalid_client"},
			{name: "token missing", authz: basicOf(holder), body: "token_type_hint=access_token", status: 400, errCode: "invalid_request"},
			{name: "token empty", authz: basicOf(holder), body: "token=", status: 400, errCode: "invalid_request"},
			{name: "not a form", contentType: "application/json", authz: basicOf(holder), body: `{"token":"x"}`, status: 400, errCode: "invalid_request"},
			{name: "GET", method: http.MethodGet, authz: basicOf(holder), status: 405, errCode: "invalid_request"},
		}
		requireRefusals(t, pathRevoke, cases, nil)
		// None of these refused requests revoked anything.
		requireAlive(t, rs, tok, "after refused revocation requests")
	})

	t.Run("§2.1 a client revokes its own token, effective on the very next request", func(t *testing.T) {
		tok := fetchToken(t, holder).AccessToken
		sibling := fetchToken(t, holder).AccessToken
		// Warm every cache on the way first: the protected route's and
		// the introspection's.
		requireAlive(t, rs, tok, "before revocation")
		requireAlive(t, rs, tok, "before revocation, again")
		resp, b := revoke(t, holder, tok, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("revocation: %d %s, want 200 (RFC 7009 §2.2)", resp.StatusCode, b)
		}
		requireDead(t, rs, tok, "right after revocation")
		requireAlive(t, rs, sibling, "another token of the same client")
		if resp, b := revoke(t, holder, tok, nil); resp.StatusCode != http.StatusOK {
			t.Errorf("revoking it again: %d %s, want 200", resp.StatusCode, b)
		}
	})

	t.Run("§2.1 token_type_hint does not limit the search", func(t *testing.T) {
		for _, hint := range []string{"refresh_token", "access_token", "bogus"} {
			tok := fetchToken(t, holder).AccessToken
			if resp, b := revoke(t, holder, tok, url.Values{"token_type_hint": {hint}}); resp.StatusCode != http.StatusOK {
				t.Fatalf("hint %s: %d %s, want 200", hint, resp.StatusCode, b)
			}
			requireDead(t, rs, tok, "revoked with token_type_hint="+hint)
		}
	})

	t.Run("§2.1 another client's token: refused (400 unauthorized_client), and it keeps working", func(t *testing.T) {
		tok := fetchToken(t, other).AccessToken
		requireAlive(t, rs, tok, "before")
		refused := func(who createdClientJSON) {
			t.Helper()
			resp, b := revoke(t, who, tok, nil)
			if m := decodeJSON(t, b); resp.StatusCode != http.StatusBadRequest || m["error"] != "unauthorized_client" {
				t.Fatalf("revoking another client's token: %d %s, want 400 unauthorized_client (RFC 7009 §2.1)", resp.StatusCode, b)
			}
		}
		refused(holder)
		requireAlive(t, rs, tok, "after another client tried to revoke it")
		// Nor can the resource server revoke what it may introspect.
		refused(rs)
		requireAlive(t, rs, tok, "after the resource server tried to revoke it")
	})

	t.Run("§2.2 an invalid or unknown token is 200", func(t *testing.T) {
		for name, tok := range map[string]string{
			"garbage":               "not-a-token",
			"unknown key":           introspection.TokenPrefix + randomB64(90),
			"client never existed":  sealFor(t, "ghost", 1),
			"expired":               mintExpired(t, holder.ClientID),
			"JWT-shaped":            "a.b.c",
			"very long":             strings.Repeat("A", 10000),
			"an identity JWT":       identityJWTFor(t, be, fetchToken(t, holder).AccessToken),
			"with spaces and UTF-8": "töken with spaces",
		} {
			if resp, b := revoke(t, holder, tok, nil); resp.StatusCode != http.StatusOK {
				t.Errorf("%s: %d %s, want 200", name, resp.StatusCode, b)
			}
		}
	})

	t.Run("a disabled client cannot revoke", func(t *testing.T) {
		c := createClient(t, demoClient)
		tok := fetchToken(t, c).AccessToken
		off := strings.Replace(demoClient, `"owner"`, `"disabled":true,"owner"`, 1)
		if resp, b := adminDo(t, http.MethodPut, "/gatehouse/clients/"+c.ClientID, off); resp.StatusCode != 200 {
			t.Fatalf("disabling: %d %s", resp.StatusCode, b)
		}
		if resp, b := revoke(t, c, tok, nil); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("revocation by a disabled client: %d %s, want 401 invalid_client", resp.StatusCode, b)
		}
	})

	t.Run("a JWT access token (RFC 9068) is revocable too", func(t *testing.T) {
		jc := createClient(t, strings.Replace(demoClient, `"owner"`, `"access_token_strategy":"jwt","owner"`, 1))
		tok := fetchToken(t, jc).AccessToken
		if strings.Count(tok, ".") != 2 {
			t.Fatalf("access_token_strategy jwt gave %.20q…, want a JWT", tok)
		}
		requireAlive(t, rs, tok, "before")
		if resp, b := revoke(t, other, tok, nil); resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("foreign revocation: %d %s, want 400 (RFC 7009 §2.1)", resp.StatusCode, b)
		}
		requireAlive(t, rs, tok, "after another client tried to revoke it")
		if resp, b := revoke(t, jc, tok, nil); resp.StatusCode != 200 {
			t.Fatalf("revocation: %d %s", resp.StatusCode, b)
		}
		requireDead(t, rs, tok, "JWT access token after revocation")
	})
}

// RFC 7009 §2.1 "the token is no longer usable": not until it expires, even
// across a config reload and a full restart on the same bbolt file.
func TestRevocationSurvivesRestart(t *testing.T) {
	be, db := newGateway(t)
	rs := createClient(t, `{"client_name":"resource server","introspect":true}`)
	holder := createClient(t, demoClient)
	jc := createClient(t, strings.Replace(demoClient, `"owner"`, `"access_token_strategy":"jwt","owner"`, 1))
	revoked := fetchToken(t, holder).AccessToken
	revokedJWT := fetchToken(t, jc).AccessToken
	kept := fetchToken(t, holder).AccessToken
	for _, tok := range []string{revoked, revokedJWT} {
		requireAlive(t, rs, tok, "before revocation")
		owner := holder
		if tok == revokedJWT {
			owner = jc
		}
		if resp, b := revoke(t, owner, tok, nil); resp.StatusCode != 200 {
			t.Fatalf("revocation: %d %s", resp.StatusCode, b)
		}
	}

	// A reload shares the open store: nothing to re-read, nothing lost.
	caddytest.NewTester(t).InitServer(gatewayConfig(db, be.Listener.Addr().String(), "4m"), "caddyfile")
	requireDead(t, rs, revoked, "after a config reload")
	requireDead(t, rs, revokedJWT, "JWT after a config reload")
	requireAlive(t, rs, kept, "unrevoked token after a config reload")

	// A restart: Gatehouse goes away entirely (its store closed), then
	// comes back on the same file.
	stopGatehouse(t, db)
	startGateway(t, db, be.Listener.Addr().String())
	requireDead(t, rs, revoked, "after a restart")
	requireDead(t, rs, revokedJWT, "JWT after a restart")
	requireAlive(t, rs, kept, "unrevoked token after a restart")
}
