package clientstore

import (
	"encoding/json"
	"slices"
	"strings"
)

// Limits of the interner: strings longer than maxInternedLen are kept as
// they are, and once a table holds maxInterned entries it only serves the
// values it already has, so deleted clients cannot make it grow forever.
const (
	maxInterned    = 1 << 14
	maxInternedLen = 512
)

// interner makes cache snapshots small. Many clients share the same scope,
// audience, owner or grant types; a snapshot refers to one
// shared copy of such a value instead of holding its own. It is used under
// the cache's write lock only.
type interner struct {
	strs  map[string]string
	lists map[string][]string
}

// snapshot returns cl in the form the cache keeps: metadata as compact
// JSON instead of a map (see Client.metaData), and repeated values shared.
// With owned, cl itself is changed (the caller passes its own copy, as
// returned by Clone or a store's decoding); otherwise a copy is.
func (in *interner) snapshot(cl *Client, owned bool) *Client {
	if !owned {
		n := *cl
		cl = &n
	}
	if cl.Metadata != nil {
		if len(cl.Metadata) == 0 {
			cl.setSnapJSON("{}")
		} else if b, err := json.Marshal(cl.Metadata); err == nil {
			cl.setSnapJSON(string(b)) // mostly one client's own: not interned
		}
		if cl.snapJSON() != "" {
			cl.Metadata = nil
		}
	}
	cl.Scope = in.str(cl.Scope)
	cl.Owner = in.str(cl.Owner)
	cl.GrantTypes = in.list(cl.GrantTypes)
	cl.Audience = in.list(cl.Audience)
	cl.TokenEndpointAuthMethod = in.str(cl.TokenEndpointAuthMethod)
	cl.AccessTokenStrategy = in.str(cl.AccessTokenStrategy)
	return cl
}

// str returns the shared copy of s.
func (in *interner) str(s string) string {
	if s == "" || len(s) > maxInternedLen {
		return s
	}
	if v, ok := in.strs[s]; ok {
		return v
	}
	if in.strs == nil {
		in.strs = make(map[string]string)
	}
	if len(in.strs) < maxInterned {
		in.strs[s] = s
	}
	return s
}

// list returns the shared copy of l (shared slices have len == cap, so an
// append never writes into another snapshot's array).
func (in *interner) list(l []string) []string {
	if len(l) == 0 {
		return l
	}
	key := strings.Join(l, "\x00")
	if len(key) > maxInternedLen {
		return l
	}
	if v, ok := in.lists[key]; ok && slices.Equal(v, l) {
		return v
	}
	if in.lists == nil {
		in.lists = make(map[string][]string)
	}
	if len(in.lists) < maxInterned {
		v := make([]string, len(l))
		for i, s := range l {
			v[i] = in.str(s)
		}
		in.lists[key] = v
		return v
	}
	return l
}
