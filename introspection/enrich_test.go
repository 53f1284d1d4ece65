package introspection

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/gatehousehq/gatehouse/clientstore"
)

func TestMergeMetadata(t *testing.T) {
	cases := []struct {
		name       string
		base, over clientstore.Metadata
		want       clientstore.Metadata
	}{
		{"both empty", nil, nil, nil},
		{"base only", clientstore.Metadata{"a": 1}, nil, clientstore.Metadata{"a": 1}},
		{"over only", nil, clientstore.Metadata{"a": 1}, clientstore.Metadata{"a": 1}},
		{"over wins a leaf", clientstore.Metadata{"a": 1, "b": 2}, clientstore.Metadata{"a": 3}, clientstore.Metadata{"a": 3, "b": 2}},
		{"objects merge deeply", clientstore.Metadata{"o": map[string]any{"x": 1, "p": map[string]any{"q": 1}}},
			clientstore.Metadata{"o": map[string]any{"y": 2, "p": map[string]any{"r": 2}}},
			clientstore.Metadata{"o": map[string]any{"x": 1, "y": 2, "p": map[string]any{"q": 1, "r": 2}}}},
		{"an object replaces a leaf", clientstore.Metadata{"o": 1}, clientstore.Metadata{"o": map[string]any{"x": 1}}, clientstore.Metadata{"o": map[string]any{"x": 1}}},
		{"a leaf replaces an object", clientstore.Metadata{"o": map[string]any{"x": 1}}, clientstore.Metadata{"o": "s"}, clientstore.Metadata{"o": "s"}},
		{"null is a value, not a deletion", clientstore.Metadata{"a": 1}, clientstore.Metadata{"a": nil}, clientstore.Metadata{"a": nil}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := json.Marshal([]clientstore.Metadata{tc.base, tc.over})
			got := mergeMetadata(tc.base, tc.over)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("merge = %v, want %v", got, tc.want)
			}
			if after, _ := json.Marshal([]clientstore.Metadata{tc.base, tc.over}); string(after) != string(before) {
				t.Errorf("inputs changed: %s → %s", before, after)
			}
		})
	}
}

func TestEnrichmentValid(t *testing.T) {
	for _, e := range []Enrichment{"", EnrichLocalWins, EnrichRemoteWins, EnrichOff} {
		if !e.Valid() {
			t.Errorf("%q.Valid() = false", e)
		}
	}
	for _, e := range []Enrichment{"local", "LOCAL_WINS", "on"} {
		if e.Valid() {
			t.Errorf("%q.Valid() = true", e)
		}
	}
}
