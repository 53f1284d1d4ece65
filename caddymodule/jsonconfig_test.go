package caddymodule

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddytest"
)

// The JSON config works as well as the Caddyfile, with the field names the
// docs list, and the outcomes show in Caddy's Prometheus metrics.
func TestJSONConfigAndMetrics(t *testing.T) {
	be := newBackend(t)
	cfg := fmt.Sprintf(`{
	"admin": {"listen": "localhost:2999"},
	"apps": {
		"gatehouse": {
			"storage": {"backend": "bolt", "path": %q},
			"issuer": "http://localhost:9080",
			"token_ttl": "1h",
			"identity_ttl": "5m"
		},
		"http": {
			"http_port": 9080,
			"https_port": 9443,
			"grace_period": 1,
			"servers": {
				"auth": {
					"listen": [":9080"],
					"automatic_https": {"disable": true},
					"routes": [{"handle": [{"handler": "gatehouse_server"}]}]
				},
				"api": {
					"listen": [":9081"],
					"automatic_https": {"disable": true},
					"routes": [{"handle": [
						{"handler": "gatehouse_protect", "scopes": ["orders:read"], "audience": "http://localhost:9081", "header": "X-Identity-Token"},
						{"handler": "reverse_proxy", "upstreams": [{"dial": %q}]}
					]}]
				}
			}
		}
	}
}`, filepath.Join(t.TempDir(), "g.db"), be.Listener.Addr().String())
	caddytest.NewTester(t).InitServer(cfg, "json")
	c := createClient(t, demoClient)
	tok := fetchToken(t, c, "orders:read")
	if resp, body := callAPI(t, apiURL, "Bearer "+tok.AccessToken, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("protected call with a JSON config: %d %s", resp.StatusCode, body)
	}
	if h := be.last(t).Get("X-Identity-Token"); h == "" {
		t.Fatal("no identity JWT reached the backend")
	}
	callAPI(t, apiURL, "Bearer garbage", nil)
	callAPI(t, apiURL, "", nil)

	resp, err := http.Get(adminURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		`gatehouse_token_requests_total{outcome="issued"} 1`,
		`gatehouse_protected_requests_total{outcome="granted"} 1`,
		`gatehouse_protected_requests_total{outcome="unauthorized"} 2`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
