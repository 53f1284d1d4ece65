package clientstore

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// A client from the cache keeps its metadata as compact JSON; every JSON
// form of the client (admin API, stored record) must be byte for byte what
// the map would have given.
func TestSnapshotJSONFormsUnchanged(t *testing.T) {
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
			mustCreate(t, c, &Client{ID: "svc", Name: `a "metadata":null name`, Scope: "read",
				Audience: []string{"aud"}, Owner: "o", Metadata: md})
			snap, _ := c.Get("svc")
			if snap.Metadata != nil {
				t.Fatalf("snapshot Metadata = %v, want nil (kept as JSON)", snap.Metadata)
			}
			plain := snap.Clone() // the map form
			if name == "nil" && plain.Metadata != nil || name != "nil" && plain.Metadata == nil {
				t.Fatalf("Clone().Metadata = %#v for %s metadata", plain.Metadata, name)
			}
			for _, enc := range []struct {
				what string
				f    func(*Client) ([]byte, error)
			}{
				{"json.Marshal", func(c *Client) ([]byte, error) { return json.Marshal(c) }},
				{"json.Marshal by value", func(c *Client) ([]byte, error) { return json.Marshal([]Client{*c}) }},
				{"stored record", encodeClient},
			} {
				got, err := enc.f(snap)
				if err != nil {
					t.Fatal(err)
				}
				want, err := enc.f(plain)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s of the snapshot:\n got %s\nwant %s", enc.what, got, want)
				}
			}
			rec, _ := encodeClient(snap)
			back, err := decodeClient(rec)
			if err != nil {
				t.Fatal(err)
			}
			wantSameClient(t, back, snap)
			raw, err := snap.MetadataJSON()
			if err != nil {
				t.Fatal(err)
			}
			if name == "nil" && raw != nil {
				t.Errorf("MetadataJSON without metadata = %s, want nil", raw)
			}
			if wantRaw, _ := plain.MetadataJSON(); !bytes.Equal(raw, wantRaw) {
				t.Errorf("MetadataJSON = %s, want %s", raw, wantRaw)
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
		p := pack(cl)
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

// id and revision read records the hot path may find half overwritten
// (see arena): whatever the bytes, they answer without panicking. And any
// client_id reads back from a record, with its revision.
func FuzzPackedHead(f *testing.F) {
	f.Add(string(pack(&Client{ID: "svc", Revision: 7})), uint64(7))
	f.Add(string(pack(&Client{ID: TokenStrategyJWT, Revision: 1 << 40})), uint64(1<<40))
	f.Add(TokenStrategyJWT, uint64(3))
	f.Add("\xff\xff\xff\xff", uint64(0))
	f.Add("\x7f", uint64(0))
	f.Add("", uint64(0))
	f.Fuzz(func(t *testing.T, raw string, rev uint64) {
		p := packed(raw)
		_, _ = p.id(), p.revision()
		if raw == "" || len(raw) > MaxIDLength {
			return
		}
		if q := pack(&Client{ID: raw, Revision: rev}); q.id() != raw || q.revision() != rev {
			t.Errorf("client_id %q, revision %d read back as %q, %d", raw, rev, q.id(), q.revision())
		}
	})
}
