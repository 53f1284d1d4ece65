package remote

// A fake RFC 7662 introspection server for the tests: it counts calls and
// connections and can be made slow, down or malicious.

import (
	"crypto/x509"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehousehq/gatehouse/clientstore/clocktest"
)

// behaviour is how the fake server answers a call.
type behaviour int

const (
	normal    behaviour = iota // the registered answer, or {"active":false}
	slow                       // wait until released (or the caller gives up)
	garbage                    // 200 with a body that is not JSON
	huge                       // 200 with a valid object padded past MaxResponseBytes
	status500                  // 500
	redirect                   // 307 to elsewhere
)

type fakeServer struct {
	*httptest.Server
	t testing.TB

	calls    atomic.Int64 // requests handled
	newConns atomic.Int64 // connections accepted
	open     atomic.Int64 // connections not yet closed

	mu       sync.Mutex
	mode     behaviour
	answers  map[string]map[string]any // token → response object
	release  chan struct{}             // closed: slow calls return
	arrived  chan struct{}             // one value per call, if set
	lastAuth string
	lastForm map[string][]string
}

func newFakeServer(t testing.TB) *fakeServer {
	f := &fakeServer{t: t, answers: map[string]map[string]any{}, release: make(chan struct{})}
	f.Server = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	f.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			f.newConns.Add(1)
			f.open.Add(1)
		case http.StateClosed, http.StateHijacked:
			f.open.Add(-1)
		}
	}
	f.Start()
	t.Cleanup(func() {
		f.unblock()
		f.Close()
	})
	return f
}

// url is the introspection endpoint.
func (f *fakeServer) url() string { return f.URL + "/oauth2/introspect" }

func (f *fakeServer) set(mode behaviour) {
	f.mu.Lock()
	f.mode = mode
	f.mu.Unlock()
}

// answer registers the response object for token.
func (f *fakeServer) answer(token string, resp map[string]any) {
	f.mu.Lock()
	f.answers[token] = resp
	f.mu.Unlock()
}

// unblock lets every slow call, now and later, return.
func (f *fakeServer) unblock() {
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-f.release:
	default:
		close(f.release)
	}
}

func (f *fakeServer) serve(w http.ResponseWriter, r *http.Request) {
	f.calls.Add(1)
	if err := r.ParseForm(); err != nil || r.Method != http.MethodPost {
		http.Error(w, "want a POSTed form", http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	mode, release, arrived := f.mode, f.release, f.arrived
	answer, known := f.answers[r.PostForm.Get("token")]
	f.lastAuth = r.Header.Get("Authorization")
	f.lastForm = r.PostForm
	f.mu.Unlock()
	if arrived != nil {
		arrived <- struct{}{}
	}
	switch mode {
	case slow:
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
	case garbage:
		w.Write([]byte("<html>502 Bad Gateway</html>"))
		return
	case huge:
		b, _ := json.Marshal(map[string]any{"active": true, "client_id": "svc", "pad": string(make([]byte, MaxResponseBytes))})
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
		return
	case status500:
		http.Error(w, `{"error":"server_error"}`, http.StatusInternalServerError)
		return
	case redirect:
		http.Redirect(w, r, "https://evil.example/steal", http.StatusTemporaryRedirect)
		return
	}
	if !known {
		answer = map[string]any{"active": false}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(answer)
}

// lastRequest returns the Authorization header and form of the last call.
func (f *fakeServer) lastRequest() (string, map[string][]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastAuth, f.lastForm
}

// t0 is where every test's clock starts.
var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

const testIssuer = "https://hydra.example.com/"

// activeAnswer is a Hydra-style answer for a client_credentials token
// expiring in an hour from t0.
func activeAnswer() map[string]any {
	return map[string]any{
		"active":     true,
		"client_id":  "svc",
		"sub":        "svc",
		"scope":      "orders:read orders:write",
		"aud":        []string{"https://api.example.com"},
		"iss":        testIssuer,
		"iat":        t0.Unix(),
		"nbf":        t0.Unix(),
		"exp":        t0.Add(time.Hour).Unix(),
		"token_type": "Bearer",
		"token_use":  "access_token",
		"jti":        "jti-1",
		"ext":        map[string]any{"realm": map[string]any{"id": "r-remote"}, "tier": "silver"},
	}
}

// newTestClient returns a Client of f with cfg's settings on top of
// test-friendly ones, and its clock at t0.
func newTestClient(t testing.TB, f *fakeServer, cfg Config) (*Client, *clocktest.Clock) {
	t.Helper()
	if cfg.URL == "" {
		cfg.URL = f.url()
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.TrustedIssuers == nil {
		cfg.TrustedIssuers = []string{testIssuer}
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	clk := clocktest.New(t0)
	c.now = clk.Now
	t.Cleanup(c.Close)
	return c, clk
}

// newTLSFake serves f's handler over TLS with httptest's own certificate.
func newTLSFake(t testing.TB, f *fakeServer) *httptest.Server {
	s := httptest.NewTLSServer(http.HandlerFunc(f.serve))
	t.Cleanup(s.Close)
	return s
}

// rootsOf trusts s's certificate.
func rootsOf(s *httptest.Server) *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(s.Certificate())
	return pool
}
