package caddymodule

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

// Key rotation and health on the embedded bbolt store, through the admin
// API of the in-process Caddy.
func TestRotateKeysAndHealthOnBolt(t *testing.T) {
	be := newBackend(t)
	startGateway(t, filepath.Join(t.TempDir(), "gatehouse.db"), be.Listener.Addr().String())
	c := createClient(t, demoClient)
	before := fetchToken(t, c, "orders:read").AccessToken

	resp, body := adminDo(t, http.MethodPost, adminRotatePath, "")
	if resp.StatusCode != 200 {
		t.Fatalf("POST %s: %d %s", adminRotatePath, resp.StatusCode, body)
	}
	var rot struct {
		Kid  string   `json:"signing_kid"`
		Kids []string `json:"jwks_kids"`
	}
	if err := json.Unmarshal(body, &rot); err != nil || len(rot.Kids) != 2 || rot.Kids[0] != rot.Kid {
		t.Fatalf("rotation answer %s, want the new kid first and the previous one", body)
	}
	var set jose.JSONWebKeySet
	jr, err := http.Get(authURL + pathJWKS)
	if err != nil {
		t.Fatal(err)
	}
	defer jr.Body.Close()
	if err := json.NewDecoder(jr.Body).Decode(&set); err != nil || len(set.Keys) != 2 {
		t.Fatalf("JWKS after rotation: %d keys (%v), want the new and the previous", len(set.Keys), err)
	}
	after := fetchToken(t, c, "orders:read").AccessToken
	for name, tok := range map[string]string{"before": before, "after": after} {
		resp, body := callAPI(t, apiURL, "Bearer "+tok, nil)
		if resp.StatusCode != 200 {
			t.Errorf("token minted %s the rotation: %d %s", name, resp.StatusCode, body)
			continue
		}
		// The identity JWT is signed with the new key and verifies
		// against the JWKS.
		if _, claims := verifyIdentity(t, be.last(t).Get("X-Identity-Token")); claims["client_id"] != c.ClientID {
			t.Errorf("identity JWT for the token minted %s: client_id %v", name, claims["client_id"])
		}
	}
	if resp, _ := adminDo(t, http.MethodGet, adminRotatePath, ""); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET %s: %d, want 405", adminRotatePath, resp.StatusCode)
	}

	resp, body = adminDo(t, http.MethodGet, adminHealthPath, "")
	var h healthReport
	if err := json.Unmarshal(body, &h); err != nil || resp.StatusCode != 200 || h.Status != "ok" || h.Backend != "bolt" || h.Watching || h.Clients != 1 {
		t.Fatalf("health on bbolt: %d %s", resp.StatusCode, body)
	}
}
