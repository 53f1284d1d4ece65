package clientstore

import (
	"hash/maphash"
	"maps"
	"sync/atomic"
)

// clientShards is the number of shards of a clientMap: a write copies one
// shard, about a 1/clientShards share of the clients.
const clientShards = 64

// clientMap maps client_id to the packed client, copy-on-write: each shard
// is an immutable map behind an atomic pointer, so readers neither lock
// nor allocate, and a write publishes a new copy of every shard it
// changes. Writers must be serialized by the caller (the cache's write
// lock).
type clientMap struct {
	seed   maphash.Seed
	shards [clientShards]atomic.Pointer[map[string]packed]
}

func newClientMap() *clientMap { return &clientMap{seed: maphash.MakeSeed()} }

func (m *clientMap) shard(id string) *atomic.Pointer[map[string]packed] {
	return &m.shards[maphash.String(m.seed, id)%clientShards]
}

// load returns the packed client id.
func (m *clientMap) load(id string) (packed, bool) {
	if s := m.shard(id).Load(); s != nil {
		p, ok := (*s)[id]
		return p, ok
	}
	return "", false
}

// each calls fn for every client, shard by shard. A write meanwhile may or
// may not show.
func (m *clientMap) each(fn func(p packed)) {
	for i := range m.shards {
		if s := m.shards[i].Load(); s != nil {
			for _, p := range *s {
				fn(p)
			}
		}
	}
}

// len is the number of clients.
func (m *clientMap) len() int {
	n := 0
	for i := range m.shards {
		if s := m.shards[i].Load(); s != nil {
			n += len(*s)
		}
	}
	return n
}

// edit starts a batch of writes; nothing is visible before commit.
func (m *clientMap) edit() *clientMapEdit {
	return &clientMapEdit{m: m, dirty: make(map[*atomic.Pointer[map[string]packed]]map[string]packed)}
}

// clientMapEdit is a batch of writes to a clientMap: each shard it changes
// is copied once and published at commit.
type clientMapEdit struct {
	m     *clientMap
	dirty map[*atomic.Pointer[map[string]packed]]map[string]packed // shard → its next contents
}

func (e *clientMapEdit) next(id string) map[string]packed {
	s := e.m.shard(id)
	if d, ok := e.dirty[s]; ok {
		return d
	}
	d := make(map[string]packed)
	if cur := s.Load(); cur != nil {
		d = maps.Clone(*cur)
	}
	e.dirty[s] = d
	return d
}

// put makes p the client of its ID. The map's key is the ID inside p, so a
// client costs no second copy of it.
func (e *clientMapEdit) put(p packed) {
	id := p.id()
	e.next(id)[id] = p
}

// delete removes id.
func (e *clientMapEdit) delete(id string) {
	if _, ok := e.dirty[e.m.shard(id)]; !ok {
		if _, ok := e.m.load(id); !ok {
			return // nothing to copy the shard for
		}
	}
	delete(e.next(id), id)
}

// commit publishes the changed shards.
func (e *clientMapEdit) commit() {
	for s, d := range e.dirty {
		s.Store(&d)
	}
	clear(e.dirty)
}

// store and remove are single writes.
func (m *clientMap) store(p packed) {
	e := m.edit()
	e.put(p)
	e.commit()
}

func (m *clientMap) remove(id string) {
	e := m.edit()
	e.delete(id)
	e.commit()
}
