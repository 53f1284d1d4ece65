package clientstore

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// A client from the cache carries its metadata as the map it was created
// with: nil stays nil, empty stays empty, numbers stay exact, and every
// JSON form of the client is what the original gives.
func TestCacheClientMetadata(t *testing.T) {
	for name, md := range map[string]Metadata{
		"nil":   nil,
		"empty": {},
		"nested": {
			"realm": map[string]any{"id": "r<1>&", "n": json.Number("12345678901234567890")},
			"tier":  "gold", "list": []any{"a", true, nil}, "z": map[string]any{},
		},
	} {
		t.Run(name, func(t *testing.T) {
			c, _, _ := newTestCache(t)
			orig := &Client{ID: "svc", Name: `a "metadata":null name`, Scope: "read",
				Audience: []string{"aud"}, Owner: "o", Metadata: md}
			mustCreate(t, c, orig)
			got, _ := c.Get("svc")
			if (md == nil) != (got.Metadata == nil) || !reflect.DeepEqual(map[string]any(got.Metadata), map[string]any(md)) {
				t.Fatalf("Get().Metadata = %#v, want %#v", got.Metadata, md)
			}
			want := got.Clone()
			want.Metadata = md
			for _, enc := range []struct {
				what string
				f    func(*Client) ([]byte, error)
			}{
				{"json.Marshal", func(c *Client) ([]byte, error) { return json.Marshal(c) }},
				{"stored record", encodeClient},
			} {
				g, err := enc.f(got)
				if err != nil {
					t.Fatal(err)
				}
				w, err := enc.f(want)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(g, w) {
					t.Errorf("%s of the cache's client:\n got %s\nwant %s", enc.what, g, w)
				}
			}
		})
	}
}

// Every field survives packing, including the nil/empty distinctions the
// JSON forms show and values long enough for multi-byte lengths.
func TestPackRoundTrip(t *testing.T) {
	full := storedClient(t, "alpha")
	full.JWKS = json.RawMessage(`{"keys":[]}`)
	full.JWKSURI = "https://keys.example.com/" + strings.Repeat("k", 300)
	full.HydraExtra = json.RawMessage(`{"redirect_uris":["https://x"]}`)
	full.AccessTokenStrategy = TokenStrategyJWT
	full.TokenEndpointAuthMethod = "none"
	full.PreviousSecretHash = hmacPrefix + "old"
	full.PreviousSecretExpiresAt = time.Date(2031, 1, 2, 3, 4, 5, 6, time.UTC)
	full.Revision, full.Generation = 1<<63+5, 1<<40+3
	bare := &Client{ID: "b", CreatedAt: time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC)}
	empty := &Client{ID: "e", GrantTypes: []string{}, Audience: []string{}, Metadata: Metadata{}}
	constant := &Client{ID: TokenStrategyJWT, Revision: 9} // an ID that packs as a constant
	h, err := NewHasher(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	hashed := &Client{ID: "h", SecretHash: h.Hash("s1"), PreviousSecretHash: h.Hash("s0"),
		PreviousSecretExpiresAt: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	// Looks like an HMAC hash but is not one Hash writes (trailing bits
	// set): kept as text.
	odd := &Client{ID: "o", SecretHash: hmacPrefix + strings.Repeat("A", 42) + "B"}
	for _, cl := range []*Client{full, bare, empty, constant, hashed, odd} {
		p := mustPack(t, cl)
		if strings.Contains(string(p), cl.SecretHash) != (cl != hashed) {
			t.Errorf("%s: secret hash %q packed as text: %v", cl.ID, cl.SecretHash, cl != hashed)
		}
		if p.id() != cl.ID || p.revision() != cl.Revision {
			t.Errorf("%s: id %q revision %d, want %q %d", cl.ID, p.id(), p.revision(), cl.ID, cl.Revision)
		}
		got := p.client()
		wantSameClient(t, got, cl)
		gj, _ := json.Marshal(got)
		wj, _ := json.Marshal(cl)
		if !bytes.Equal(gj, wj) {
			t.Errorf("%s: JSON after packing\n got %s\nwant %s", cl.ID, gj, wj)
		}
	}
}

// Any client_id reads back from a packed client, with its revision,
// without decoding the rest.
func FuzzPackedID(f *testing.F) {
	f.Add("svc", uint64(7))
	f.Add(TokenStrategyJWT, uint64(1<<40)) // an ID that packs as a constant
	f.Add(strings.Repeat("x", MaxIDLength), uint64(0))
	f.Fuzz(func(t *testing.T, id string, rev uint64) {
		if ValidateID(id) != nil {
			return
		}
		if p := mustPack(t, &Client{ID: id, Revision: rev}); p.id() != id || p.revision() != rev {
			t.Errorf("client_id %q, revision %d read back as %q, %d", id, rev, p.id(), p.revision())
		}
	})
}
