package caddymodule

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"
)

// At most `running` at once, at most `queued` waiting; anything more is
// refused at once, and a waiting request gets in when a slot frees.
func TestAdmissionBoundsRunningAndWaiting(t *testing.T) {
	a := newAdmission(1, 1, time.Minute)
	ctx := context.Background()
	if !a.enter(ctx) {
		t.Fatal("the first request was refused")
	}
	admitted := make(chan bool)
	go func() { admitted <- a.enter(ctx) }()
	for a.waiting.Load() != 1 { // the second is queued
		runtime.Gosched()
	}
	if a.enter(ctx) {
		t.Fatal("a third request got in with the one slot taken and the queue full")
	}
	a.leave()
	if !<-admitted {
		t.Fatal("the queued request was refused when the slot freed")
	}
	a.leave()

	// A queued request waits no longer than the admission's wait.
	short := newAdmission(1, 1, time.Millisecond)
	short.enter(ctx)
	if short.enter(ctx) {
		t.Fatal("a queued request got in while the slot stayed taken")
	}
}

// A token request the endpoint has no room for gets 503
// temporarily_unavailable with Retry-After and no-store, is counted, and
// costs no authentication; once there is room again, tokens are issued.
func TestTokenEndpointShedsOverload(t *testing.T) {
	g := newBenchGateway(t)
	g.app.tokens = newAdmission(1, 0, time.Millisecond)
	s := g.server()
	request := func() *httptest.ResponseRecorder {
		body := url.Values{"grant_type": {"client_credentials"}}.Encode()
		r := httptest.NewRequest(http.MethodPost, "http://auth.example.com"+pathToken, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.SetBasicAuth(g.client.ID, g.secret)
		w := httptest.NewRecorder()
		if err := s.ServeHTTP(w, r, nopHandler); err != nil {
			t.Fatal(err)
		}
		return w
	}
	g.app.tokens.enter(context.Background()) // the one slot, taken
	w := request()
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != "1" || w.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("overloaded token endpoint: %d, Retry-After %q, Cache-Control %q; want 503, 1, no-store",
			w.Code, w.Header().Get("Retry-After"), w.Header().Get("Cache-Control"))
	}
	if m := decodeJSON(t, w.Body.Bytes()); m["error"] != "temporarily_unavailable" {
		t.Errorf("error %v, want temporarily_unavailable", m["error"])
	}
	g.app.tokens.leave()
	if w := request(); w.Code != http.StatusOK {
		t.Fatalf("token request with room again: %d %s", w.Code, w.Body)
	}
}
