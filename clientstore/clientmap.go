package clientstore

import (
	"hash/maphash"
	"sync/atomic"
	"time"

	"github.com/gatehousehq/gatehouse/clientstore/offheap"
)

// clientShards is the number of shards of a clientMap: a write rebuilds
// one shard, about a 1/clientShards share of the clients.
const clientShards = 256

// clientMap maps client_id to the packed client. The packed clients live
// in an arena, outside the Go heap (package offheap); the map's slots hold
// their handles.
// Reads are lock-free and allocation-free: each shard is a table of
// handles behind an atomic pointer, and a write publishes a rebuilt table
// for each shard it changes. A client costs one 8-byte slot at most half
// full (16 bytes on average) besides its record; the price is rebuilding a
// shard per write, which admin writes can afford. When the arena moves a
// record (compaction) it changes the slot in place. Writers must be
// serialized by the caller (the cache's write lock).
type clientMap struct {
	seed   maphash.Seed
	shards [clientShards]atomic.Pointer[clientTable]
	arena  *offheap.Arena
}

// clientTable is one shard: linear probing over slots, which are never
// more than half full, so a probe always ends at an empty slot.
type clientTable struct {
	slots []atomic.Uint64 // handles; 0 is empty
	n     int
}

// newClientMap returns an empty map. Its readers do not lock: freed arena
// chunks wait a second before they are reused (see offheap.Arena).
func newClientMap() *clientMap {
	return newClientMapIn(offheap.New(offheap.Options{Limbo: time.Second}))
}

func newClientMapIn(a *offheap.Arena) *clientMap {
	return &clientMap{seed: maphash.MakeSeed(), arena: a}
}

// record is the packed client r, read in place (see offheap.Arena.String).
func (m *clientMap) record(r uint64) packed { return packed(m.arena.String(offheap.Handle(r))) }

func (m *clientMap) hash(id string) uint64 { return maphash.String(m.seed, id) }

// start is where the probe for hash h begins in a table of n slots: the
// high bits of h scaled to n (the low bits chose the shard).
func start(h uint64, n int) int { return int((h >> 32) * uint64(n) >> 32) }

// find returns the handle of id, 0 if there is none. Unless the caller
// holds the write lock or pins the arena, the answer is only trustworthy
// if the arena's epoch is the same before and after.
func (m *clientMap) find(id string) uint64 {
	h := m.hash(id)
	t := m.shards[h%clientShards].Load()
	if t == nil {
		return 0
	}
	for i := start(h, len(t.slots)); ; {
		r := t.slots[i].Load()
		if r == 0 {
			return 0
		}
		if m.record(r).id() == id {
			return r
		}
		if i++; i == len(t.slots) {
			i = 0
		}
	}
}

// revision returns the revision of id, without allocating.
func (m *clientMap) revision(id string) (uint64, bool) {
	for {
		e := m.arena.Epoch()
		r := m.find(id)
		var rev uint64
		if r != 0 {
			rev = m.record(r).revision()
		}
		if m.arena.Epoch() == e {
			return rev, r != 0
		}
	}
}

// load returns a copy of the packed client id, on the Go heap.
func (m *clientMap) load(id string) (packed, bool) {
	for {
		e := m.arena.Epoch()
		var p packed
		if r := m.find(id); r != 0 {
			p = m.record(r).clone()
		}
		if m.arena.Epoch() == e {
			return p, p != ""
		}
	}
}

// each calls fn for every client, shard by shard. p is in the arena: fn
// must not keep it, and the caller must hold the write lock or pin the
// arena (see pinned).
func (m *clientMap) each(fn func(p packed)) {
	for i := range m.shards {
		if t := m.shards[i].Load(); t != nil {
			for j := range t.slots {
				if r := t.slots[j].Load(); r != 0 {
					fn(m.record(r))
				}
			}
		}
	}
}

// pinned runs fn while no freed arena memory is reused: long readers
// (each) that do not hold the write lock.
func (m *clientMap) pinned(fn func()) {
	m.arena.Pin()
	defer m.arena.Unpin()
	fn()
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

// build makes the table of the clients in set (nil if there are none),
// appending new records to the arena.
func (m *clientMap) build(set map[string]mapEntry) *clientTable {
	if len(set) == 0 {
		return nil
	}
	t := &clientTable{slots: make([]atomic.Uint64, 2*len(set)+1), n: len(set)}
	for id, e := range set {
		r := e.handle
		if r == 0 {
			r = uint64(m.arena.Append(string(e.p)))
		}
		i := start(m.hash(id), len(t.slots))
		for t.slots[i].Load() != 0 {
			if i++; i == len(t.slots) {
				i = 0
			}
		}
		t.slots[i].Store(r)
	}
	return t
}

// edit starts a batch of writes; nothing is visible before commit.
func (m *clientMap) edit() *clientMapEdit {
	return &clientMapEdit{m: m, dirty: make(map[uint64]map[string]mapEntry)}
}

// clientMapEdit is a batch of writes to a clientMap: each shard it changes
// is rebuilt once, at commit.
type clientMapEdit struct {
	m     *clientMap
	dirty map[uint64]map[string]mapEntry // shard → its clients by ID
}

// mapEntry is a client of a shard being rebuilt: in the arena already
// (handle), or new (p, on the Go heap).
type mapEntry struct {
	handle uint64
	p      packed
}

func (e *clientMapEdit) shardSet(id string) map[string]mapEntry {
	s := e.m.hash(id) % clientShards
	if d, ok := e.dirty[s]; ok {
		return d
	}
	var d map[string]mapEntry
	if t := e.m.shards[s].Load(); t != nil {
		d = make(map[string]mapEntry, t.n+1)
		for i := range t.slots {
			if r := t.slots[i].Load(); r != 0 {
				d[e.m.record(r).id()] = mapEntry{handle: r}
			}
		}
	} else {
		d = make(map[string]mapEntry)
	}
	e.dirty[s] = d
	return d
}

// put makes p the client of its ID.
func (e *clientMapEdit) put(p packed) {
	id := p.id()
	d := e.shardSet(id)
	e.drop(d, id)
	d[id] = mapEntry{p: p}
}

// delete removes id.
func (e *clientMapEdit) delete(id string) {
	if _, ok := e.dirty[e.m.hash(id)%clientShards]; !ok {
		if e.m.find(id) == 0 {
			return // nothing to rebuild the shard for
		}
	}
	d := e.shardSet(id)
	e.drop(d, id)
	delete(d, id)
}

// drop releases the arena record of id in d, if it has one.
func (e *clientMapEdit) drop(d map[string]mapEntry, id string) {
	if old := d[id].handle; old != 0 {
		e.m.arena.Release(offheap.Handle(old))
	}
}

// commit publishes the changed shards, then lets the arena compact.
func (e *clientMapEdit) commit() {
	for s, d := range e.dirty {
		e.m.shards[s].Store(e.m.build(d))
	}
	clear(e.dirty)
	e.m.arena.Compact(e.m.walk)
}

// walk lets the arena move records: a slot whose record moved changes in
// place (atomically: readers see the old or the new handle).
func (m *clientMap) walk(move func(offheap.Handle) offheap.Handle) {
	for s := range m.shards {
		if t := m.shards[s].Load(); t != nil {
			for i := range t.slots {
				if r := t.slots[i].Load(); r != 0 {
					if n := uint64(move(offheap.Handle(r))); n != r {
						t.slots[i].Store(n)
					}
				}
			}
		}
	}
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
