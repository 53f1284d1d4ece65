package clientstore

import (
	"hash/maphash"
	"sync/atomic"
)

// clientShards is the number of shards of a clientMap: a write rebuilds
// one shard, about a 1/clientShards share of the clients.
const clientShards = 256

// clientMap maps client_id to the packed client. Reads are lock-free and
// allocation-free: each shard is an immutable open-addressing table of
// packed clients behind an atomic pointer, and a write publishes a rebuilt
// table for each shard it changes. A client costs one string slot at most
// half full (32 bytes on average), against about 120 for a sync.Map (boxed
// key, entry and trie nodes); the price is rebuilding a shard per write,
// which admin writes can afford. The key of a client is its ID. Writers
// must be serialized by the caller (the cache's write lock).
type clientMap struct {
	seed   maphash.Seed
	shards [clientShards]atomic.Pointer[clientTable]
}

// clientTable is one shard: linear probing over slots, which are never
// more than half full, so a probe always ends at an empty slot.
type clientTable struct {
	slots []packed
	n     int
}

func newClientMap() *clientMap { return &clientMap{seed: maphash.MakeSeed()} }

func (m *clientMap) hash(id string) uint64 { return maphash.String(m.seed, id) }

// start is where the probe for hash h begins in a table of n slots: the
// high bits of h scaled to n (the low bits chose the shard).
func start(h uint64, n int) int { return int((h >> 32) * uint64(n) >> 32) }

// load returns the packed client id.
func (m *clientMap) load(id string) (packed, bool) {
	h := m.hash(id)
	t := m.shards[h%clientShards].Load()
	if t == nil {
		return "", false
	}
	for i := start(h, len(t.slots)); ; {
		p := t.slots[i]
		if p == "" {
			return "", false
		}
		if p.id() == id {
			return p, true
		}
		if i++; i == len(t.slots) {
			i = 0
		}
	}
}

// each calls fn for every client, shard by shard.
func (m *clientMap) each(fn func(packed)) {
	for i := range m.shards {
		if t := m.shards[i].Load(); t != nil {
			for _, p := range t.slots {
				if p != "" {
					fn(p)
				}
			}
		}
	}
}

// len is the number of clients.
func (m *clientMap) len() int {
	n := 0
	for i := range m.shards {
		if t := m.shards[i].Load(); t != nil {
			n += t.n
		}
	}
	return n
}

// build makes the table of the clients in set (nil if there are none).
func (m *clientMap) build(set map[string]packed) *clientTable {
	if len(set) == 0 {
		return nil
	}
	t := &clientTable{slots: make([]packed, 2*len(set)+1), n: len(set)}
	for id, p := range set {
		i := start(m.hash(id), len(t.slots))
		for t.slots[i] != "" {
			if i++; i == len(t.slots) {
				i = 0
			}
		}
		t.slots[i] = p
	}
	return t
}

// edit starts a batch of writes; nothing is visible before commit.
func (m *clientMap) edit() *clientMapEdit {
	return &clientMapEdit{m: m, dirty: make(map[uint64]map[string]packed)}
}

// clientMapEdit is a batch of writes to a clientMap: each shard it changes
// is rebuilt once, at commit.
type clientMapEdit struct {
	m     *clientMap
	dirty map[uint64]map[string]packed // shard → its clients by ID
}

func (e *clientMapEdit) shardSet(id string) map[string]packed {
	s := e.m.hash(id) % clientShards
	if d, ok := e.dirty[s]; ok {
		return d
	}
	var d map[string]packed
	if t := e.m.shards[s].Load(); t != nil {
		d = make(map[string]packed, t.n+1)
		for _, p := range t.slots {
			if p != "" {
				d[p.id()] = p
			}
		}
	} else {
		d = make(map[string]packed)
	}
	e.dirty[s] = d
	return d
}

// put makes p the client of its ID.
func (e *clientMapEdit) put(p packed) {
	id := p.id()
	e.shardSet(id)[id] = p
}

// delete removes id.
func (e *clientMapEdit) delete(id string) {
	if _, ok := e.dirty[e.m.hash(id)%clientShards]; !ok {
		if _, ok := e.m.load(id); !ok {
			return // nothing to rebuild the shard for
		}
	}
	delete(e.shardSet(id), id)
}

// commit publishes the changed shards.
func (e *clientMapEdit) commit() {
	for s, d := range e.dirty {
		e.m.shards[s].Store(e.m.build(d))
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
