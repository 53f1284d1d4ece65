package introspection

import (
	"cmp"

	"github.com/gatehousehq/gatehouse/clientstore"
)

// Enrichment says whether and how a remote token's identity is enriched
// with the local client record of the same client_id: its operator-set
// metadata merges with the remote `ext`, its owner fills in a missing one.
type Enrichment string

// Enrichment modes.
const (
	// EnrichLocalWins merges, and the local record wins conflicts (the
	// default): the operator's word is final.
	EnrichLocalWins Enrichment = "local_wins"
	// EnrichRemoteWins merges, and the remote server wins conflicts.
	EnrichRemoteWins Enrichment = "remote_wins"
	// EnrichOff passes the remote identity through as it came.
	EnrichOff Enrichment = "off"
)

// Valid reports whether e is a known mode ("" counts as the default).
func (e Enrichment) Valid() bool {
	switch e {
	case "", EnrichLocalWins, EnrichRemoteWins, EnrichOff:
		return true
	}
	return false
}

func (rt *Authorizer) localRecord(clientID string) *clientstore.Client {
	if clientID == "" {
		return nil
	}
	c, _ := rt.auth.clients.Get(clientID)
	return c
}

// enrichResult merges the local client record of the same client_id into
// a remote result (operator-set metadata is trusted). A local
// record that is disabled refuses the token: the operator's switch holds
// whichever server issued it.
func (rt *Authorizer) enrichResult(r *Result) error {
	if rt.enrich == EnrichOff {
		return nil
	}
	c := rt.localRecord(r.Claims.ClientID)
	if c == nil {
		return nil
	}
	if c.Disabled {
		return ErrDisabled
	}
	rem := *r.Remote // the remote's answer may be shared: edit a copy
	if rt.enrich == EnrichRemoteWins {
		rem.Ext = mergeMetadata(c.Metadata, rem.Ext)
		rem.Owner = cmp.Or(rem.Owner, c.Owner)
	} else {
		rem.Ext = mergeMetadata(rem.Ext, c.Metadata)
		rem.Owner = cmp.Or(c.Owner, rem.Owner)
	}
	r.Remote = &rem
	r.Client = c
	return nil
}

// mergeMetadata returns base with over merged in: objects merge key by
// key, recursively; any other value of over replaces base's. Neither input
// is modified.
func mergeMetadata(base, over clientstore.Metadata) clientstore.Metadata {
	if len(over) == 0 {
		return base
	}
	if len(base) == 0 {
		return over
	}
	return clientstore.Metadata(mergeObjects(base, over))
}

func mergeObjects(base, over map[string]any) map[string]any {
	out := make(map[string]any, len(base)+len(over))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		bo, ok1 := asObject(out[k])
		oo, ok2 := asObject(v)
		if ok1 && ok2 {
			out[k] = mergeObjects(bo, oo)
		} else {
			out[k] = v
		}
	}
	return out
}

func asObject(v any) (map[string]any, bool) {
	switch o := v.(type) {
	case map[string]any:
		return o, true
	case clientstore.Metadata:
		return o, true
	}
	return nil, false
}
