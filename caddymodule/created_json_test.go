package caddymodule

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehousehq/gatehouse/clientstore"
)

// The create and rotate answer is the client's JSON form followed by
// client_secret, whatever form the client snapshot keeps its metadata in.
func TestCreatedClientJSON(t *testing.T) {
	store, err := clientstore.OpenBolt(filepath.Join(t.TempDir(), "c.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	cache, err := clientstore.NewCache(context.Background(), store)
	if err != nil {
		t.Fatal(err)
	}
	for _, md := range []clientstore.Metadata{nil, {}, {"realm": map[string]any{"id": "r<1>"}}} {
		c, secret, err := cache.Create(context.Background(), &clientstore.Client{ID: "svc", Metadata: md})
		if err != nil {
			t.Fatal(err)
		}
		plain, _ := json.Marshal(c)
		got, err := json.Marshal(createdClient{Client: c, ClientSecret: secret})
		if err != nil {
			t.Fatal(err)
		}
		want := strings.TrimSuffix(string(plain), "}") + `,"client_secret":"` + secret + `"}`
		if string(got) != want {
			t.Errorf("created answer:\n got %s\nwant %s", got, want)
		}
		if err := cache.Delete(context.Background(), "svc"); err != nil {
			t.Fatal(err)
		}
	}
}
