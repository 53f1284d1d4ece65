package caddymodule

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func tokenCall(s *Server, addr, id, secret string, body url.Values) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "http://auth.example.com"+pathToken, strings.NewReader(body.Encode()))
	r.RemoteAddr = addr
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.SetBasicAuth(id, secret)
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r, nopHandler)
	return w
}

// Failures from one address must not lock a client out for its own,
// correct requests from another address (brute-force protection without
// a lockout weapon).
func TestFailuresElsewhereDoNotLockOutAClient(t *testing.T) {
	g := newBenchGateway(t)
	s := g.server()
	form := url.Values{"grant_type": {"client_credentials"}}
	for range 30 {
		tokenCall(s, "203.0.113.66:4000", g.client.ID, "wrong", form)
	}
	if w := tokenCall(s, "203.0.113.66:4000", g.client.ID, "wrong", form); w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" {
		t.Fatalf("attacker after 30 failures: %d (Retry-After %q), want 429 with Retry-After", w.Code, w.Header().Get("Retry-After"))
	}
	if w := tokenCall(s, "198.51.100.7:4000", g.client.ID, g.secret, form); w.Code != http.StatusOK {
		t.Fatalf("the client from its own address: %d %s, want 200", w.Code, w.Body)
	}
}

// RFC 6749 §3.2: parameters sent without a value are treated as omitted.
func TestEmptyParametersAreOmitted(t *testing.T) {
	g := newBenchGateway(t)
	s := g.server()
	w := tokenCall(s, "192.0.2.1:1", g.client.ID, g.secret,
		url.Values{"grant_type": {"client_credentials"}, "client_secret": {""}, "client_id": {""}, "scope": {""}})
	if w.Code != http.StatusOK {
		t.Fatalf("Basic credentials with empty client_secret and client_id parameters: %d %s, want 200", w.Code, w.Body)
	}
}

// RFC 6749 §5.2: error_description holds only %x20-21 / %x23-5B / %x5D-7E.
func TestErrorDescriptionCharacters(t *testing.T) {
	g := newBenchGateway(t)
	s := g.server()
	body := url.Values{"grant_type": {"client_credentials"}, `sc"o\pe`: {"a", "b"}}
	w := tokenCall(s, "192.0.2.1:1", g.client.ID, g.secret, body)
	if w.Code != http.StatusBadRequest {
		t.Fatalf("repeated parameter: %d, want 400", w.Code)
	}
	desc := jsonField(w.Body.Bytes(), "error_description")
	for i := 0; i < len(desc); i++ {
		if c := desc[i]; c < 0x20 || c == '"' || c == '\\' || c > 0x7E {
			t.Fatalf("error_description %q has %q, outside RFC 6749 §5.2", desc, c)
		}
	}
}

func TestClientAddrIPv6Prefix(t *testing.T) {
	for _, tc := range []struct{ remote, want string }{
		{"192.0.2.7:1234", "192.0.2.7"},
		{"[2001:db8:1:2:3:4:5:6]:443", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:ffff::1]:443", "2001:db8:1:2::/64"},
		{"[::ffff:192.0.2.7]:80", "::ffff:192.0.2.7"},
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = tc.remote
		if got := clientAddr(r); got != tc.want {
			t.Errorf("clientAddr(%s) = %q, want %q", tc.remote, got, tc.want)
		}
	}
}
