package clientstore

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
)

// A cache snapshot keeps its metadata as compact JSON; every JSON form of
// the client (admin API, stored record) must be byte for byte what the
// map would have given.
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
			snap, _ := mustCreate(t, c, &Client{ID: "svc", Name: `a "metadata":null name`, Scope: "read",
				Audience: []string{"aud"}, Owner: "o", Metadata: md})
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

// Snapshots share interned values; a copy made to edit must not reach
// another snapshot through them.
func TestSnapshotsShareNothingWritable(t *testing.T) {
	ctx := context.Background()
	c, _, _ := newTestCache(t)
	a, _ := mustCreate(t, c, &Client{ID: "a", Scope: "read", Audience: []string{"aud"}, Metadata: Metadata{"k": "a"}})
	b, _ := mustCreate(t, c, &Client{ID: "b", Scope: "read", Audience: []string{"aud"}, Metadata: Metadata{"k": "b"}})
	if &a.Audience[0] != &b.Audience[0] || &a.GrantTypes[0] != &b.GrantTypes[0] {
		t.Error("equal audiences and grant types are not shared between snapshots")
	}
	if len(a.Audience) != cap(a.Audience) {
		t.Errorf("shared audience has len %d, cap %d: an append would write into it", len(a.Audience), cap(a.Audience))
	}
	e := a.Clone()
	e.Audience[0] = "changed"
	e.GrantTypes = append(e.GrantTypes, "x")
	e.Metadata["k"] = "changed"
	if b.Audience[0] != "aud" || len(b.GrantTypes) != 1 || a.MetadataObject()["k"] != "a" {
		t.Fatalf("editing a copy changed the snapshots: %v %v %v", b.Audience, b.GrantTypes, a.MetadataObject())
	}
	// Round trip through an update: the metadata stays the same.
	up, err := c.Update(ctx, a.Clone())
	if err != nil {
		t.Fatal(err)
	}
	if got := up.MetadataObject(); got["k"] != "a" || len(got) != 1 {
		t.Errorf("metadata after an update without changes = %v", got)
	}
}
