package clientstore

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// arena keeps the packed clients of a clientMap outside the Go heap, in
// chunks of memory mapped from the operating system (see arenaMap), so
// that a hundred thousand clients do not count towards the heap size that
// sets the garbage collector's pace: the Go heap grows to about twice its
// live size between collections, and those clients would otherwise be
// most of it. (Where mapping is not supported the chunks are ordinary Go
// byte slices and only the layout below remains.)
//
// A record is addressed by a handle (chunk, offset, length), which the
// clientMap keeps in its slots. Records are appended and never changed in
// place; a record that is replaced or deleted leaves dead bytes behind,
// and when there are enough of them compact moves the live records of the
// deadest chunks elsewhere and frees those chunks.
//
// Readers do not lock. A reader may still be reading a record that was
// just moved, so a freed chunk is not reused at once: it waits in limbo
// for arenaLimbo, and every compaction bumps the epoch, which lock-free
// readers check after reading (see clientMap.revision and copy) and retry
// if it moved, so they never act on bytes of a reused chunk. Readers that
// take longer (listing all clients) hold mu's read lock instead, which
// reuse waits for.
//
// Writers (append, release, compact) must be serialized by the caller.
type arena struct {
	epoch  atomic.Uint64
	chunks atomic.Pointer[[]*arenaChunk] // by index; only ever grows
	mu     sync.RWMutex                  // held by slow readers; reuse of freed chunks waits for them

	cur   int // index of the chunk being appended to; -1 before the first
	free  []int
	limbo []limboChunk
	used  int // bytes appended to chunks in use, live or dead
	dead  int // of which dead
	chunk int // size of a chunk (arenaChunkSize; tests make it small)
	now   func() time.Time
}

type arenaChunk struct {
	mem    []byte
	mapped bool // by arenaMap; else a Go slice
	used   int  // bytes appended
	dead   int  // bytes of released records
}

type limboChunk struct {
	idx   int
	since time.Time
}

const (
	arenaChunkSize = 1 << 20
	// arenaLimbo is how long a freed chunk waits before it is reused.
	arenaLimbo = time.Second
)

// A handle packs a record's chunk (16 bits), offset (24) and length (24).
// Records are never empty, so 0 is no handle.
func handle(chunk, off, n int) uint64 { return uint64(chunk)<<48 | uint64(off)<<24 | uint64(n) }

func handleChunk(h uint64) int { return int(h >> 48) }
func handleLen(h uint64) int   { return int(h & (1<<24 - 1)) }
func handleOff(h uint64) int   { return int(h >> 24 & (1<<24 - 1)) }

func newArena() *arena {
	a := &arena{cur: -1, chunk: arenaChunkSize, now: time.Now}
	a.chunks.Store(new([]*arenaChunk))
	return a
}

// record returns the bytes of h as a string. It always lies within its
// chunk's memory, but unless the caller holds the write lock or mu's read
// lock, its content is only trustworthy if the epoch did not change
// between loading h and the last read of the string.
func (a *arena) record(h uint64) packed {
	c := (*a.chunks.Load())[handleChunk(h)]
	off, n := handleOff(h), handleLen(h)
	return packed(unsafe.String(&c.mem[off], n))
}

// append copies p into the arena and returns its handle.
func (a *arena) append(p packed) uint64 {
	n := len(p)
	if n == 0 || n >= 1<<24 {
		panic("clientstore: packed client of impossible size") // field limits keep it under 128 KiB
	}
	chunks := *a.chunks.Load()
	if a.cur < 0 || len(chunks[a.cur].mem)-chunks[a.cur].used < n {
		a.cur = a.fresh(n)
		chunks = *a.chunks.Load()
	}
	c := chunks[a.cur]
	off := c.used
	copy(c.mem[off:], p)
	c.used += n
	a.used += n
	return handle(a.cur, off, n)
}

// fresh returns the index of an empty chunk with room for n bytes: a
// reusable one if there is, else a new one.
func (a *arena) fresh(n int) int {
	a.reclaim()
	chunks := *a.chunks.Load()
	for i, idx := range a.free {
		if len(chunks[idx].mem) >= n {
			a.free = append(a.free[:i], a.free[i+1:]...)
			return idx
		}
	}
	if len(chunks) == 1<<16 {
		panic("clientstore: client arena full") // 64 GiB of clients
	}
	c := new(arenaChunk)
	c.mem, c.mapped = arenaMap(max(n, a.chunk))
	next := append(chunks[:len(chunks):len(chunks)], c)
	a.chunks.Store(&next)
	return len(next) - 1
}

// release marks the record h dead: no slot refers to it any more.
func (a *arena) release(h uint64) {
	(*a.chunks.Load())[handleChunk(h)].dead += handleLen(h)
	a.dead += handleLen(h)
}

// reclaim makes the chunks that have been in limbo long enough reusable.
func (a *arena) reclaim() {
	now := a.now()
	n := 0
	for n < len(a.limbo) && now.Sub(a.limbo[n].since) >= arenaLimbo {
		n++
	}
	if n == 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.epoch.Add(1)
	chunks := *a.chunks.Load()
	for _, l := range a.limbo[:n] {
		c := chunks[l.idx]
		if c.mapped {
			arenaRelease(c.mem)
		}
		c.used, c.dead = 0, 0
		a.free = append(a.free, l.idx)
	}
	a.limbo = append(a.limbo[:0], a.limbo[n:]...)
}

// needsCompaction reports whether dead bytes are a quarter of the chunks
// in use, and at least two chunks' worth.
func (a *arena) needsCompaction() bool {
	return a.dead >= 2*a.chunk && 4*a.dead >= a.used
}

// victims picks the chunks to empty: the deadest first, until about four
// chunks' worth of live bytes would move. The chunk being appended to is never
// one.
func (a *arena) victims() map[int]bool {
	chunks := *a.chunks.Load()
	var cand []int
	for i, c := range chunks {
		if i != a.cur && c.dead > 0 {
			cand = append(cand, i)
		}
	}
	slices.SortFunc(cand, func(x, y int) int { return chunks[y].dead - chunks[x].dead })
	out := map[int]bool{}
	moved := 0
	for _, i := range cand {
		if moved > 0 && moved+chunks[i].used-chunks[i].dead > 4*a.chunk {
			break
		}
		moved += chunks[i].used - chunks[i].dead
		out[i] = true
	}
	return out
}

// retire puts the emptied chunks in limbo, and the epoch moves on: a
// reader that started before may have read a moved record in one of
// them, and now reads it again where it moved.
func (a *arena) retire(victims map[int]bool) {
	chunks := *a.chunks.Load()
	now := a.now()
	for i := range victims {
		c := chunks[i]
		a.used -= c.used
		a.dead -= c.dead
		c.used, c.dead = len(c.mem), 0 // nothing is appended to it until it is reused
		a.limbo = append(a.limbo, limboChunk{i, now})
	}
	a.epoch.Add(1)
}
