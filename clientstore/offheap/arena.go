// Package offheap keeps many small immutable records outside the Go heap.
//
// Gatehouse holds every client and a bounded number of signed identities
// in memory. Kept as Go strings they would be most of the heap, and the
// garbage collector lets the heap grow to about twice its live size
// between collections (GOGC=100): a hundred thousand clients would cost
// their size twice over in resident memory. An Arena keeps them in chunks
// of memory mapped from the operating system instead (Linux; elsewhere
// the chunks are ordinary Go byte slices and only the layout remains), so
// they cost their size once and the collector neither paces by nor scans
// them.
package offheap

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Arena stores records and addresses each by a Handle. Records are
// appended and never changed in place; a record its owner no longer refers
// to is released, which leaves dead bytes behind, and when there are
// enough of them Compact moves the live records of the deadest chunks
// elsewhere (the owner updates its handles) and frees those chunks.
//
// An owner whose readers hold a lock that its moves and releases also
// take needs nothing more. If records are read without such a lock, one
// may be read while it is being moved, so a freed chunk must not be reused
// at once: it waits in limbo (Options.Limbo), and every compaction and
// every reuse moves the epoch on. Lock-free readers load the Epoch before
// and after reading and retry if it moved, so they never act on the bytes
// of a reused chunk; readers that take longer (listing everything) hold
// Pin instead, which reuse waits for.
//
// Writers (Append, Release, Compact) must be serialized by the owner.
type Arena struct {
	epoch  atomic.Uint64
	chunks atomic.Pointer[[]*chunk] // by index; only ever grows
	pin    sync.RWMutex             // held by slow readers; reuse waits for them

	cur   int // index of the chunk being appended to; -1 before the first
	free  []int
	limbo []limboChunk
	used  int // bytes appended to chunks in use, live or dead
	dead  int // of which dead
	opts  Options
}

// Options configure an Arena.
type Options struct {
	ChunkSize int              // the size of the chunks mapped (ChunkSize if 0)
	Limbo     time.Duration    // how long a freed chunk waits before it is reused, for lock-free readers
	Now       func() time.Time // the limbo's clock (time.Now if nil)
}

type chunk struct {
	mem    []byte
	mapped bool // by mapChunk; else a Go slice
	used   int  // bytes appended
	dead   int  // bytes of released records
}

type limboChunk struct {
	idx   int
	since time.Time
}

const (
	// ChunkSize is the default size of the chunks an arena maps.
	ChunkSize = 1 << 20
	// MaxRecord is the size limit of one record.
	MaxRecord = 1<<24 - 1
)

// inUse is the memory of all arenas' chunks that is not given back to
// the operating system: chunks in use or in limbo.
var inUse atomic.Int64

// InUse is how much memory the process's arenas hold outside the Go heap,
// in bytes: Go's own memory statistics do not count it.
func InUse() int64 { return inUse.Load() }

// A Handle addresses a record: its chunk (16 bits), offset (24) and
// length (24). Records are never empty, so 0 is no handle.
type Handle uint64

func handle(c, off, n int) Handle { return Handle(uint64(c)<<48 | uint64(off)<<24 | uint64(n)) }

func (h Handle) chunk() int { return int(h >> 48) }
func (h Handle) off() int   { return int(h >> 24 & (1<<24 - 1)) }

// Len is the length of the record.
func (h Handle) Len() int { return int(h & (1<<24 - 1)) }

// New returns an empty arena.
func New(opts Options) *Arena {
	if opts.ChunkSize <= 0 {
		opts.ChunkSize = ChunkSize
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	a := &Arena{cur: -1, opts: opts}
	a.chunks.Store(new([]*chunk))
	return a
}

// Epoch is the arena's epoch (see Arena).
func (a *Arena) Epoch() uint64 { return a.epoch.Load() }

// String returns the record h. It always lies within mapped memory, but
// its content is only trustworthy to a writer, to a holder of Pin, to an
// owner whose lock keeps h from being moved or released, or if the Epoch
// is the same before loading h and after the last read of the string.
// Never keep it: copy what must outlive the read.
func (a *Arena) String(h Handle) string {
	c := (*a.chunks.Load())[h.chunk()]
	return unsafe.String(&c.mem[h.off()], h.Len())
}

// Append copies s into the arena and returns its handle. It panics if s
// is empty or longer than MaxRecord.
func (a *Arena) Append(s string) Handle {
	n := len(s)
	if n == 0 || n > MaxRecord {
		panic("offheap: record of impossible size")
	}
	chunks := *a.chunks.Load()
	if a.cur < 0 || len(chunks[a.cur].mem)-chunks[a.cur].used < n {
		a.cur = a.fresh(n)
		chunks = *a.chunks.Load()
	}
	c := chunks[a.cur]
	off := c.used
	c.used += copy(c.mem[off:], s)
	a.used += n
	return handle(a.cur, off, n)
}

// fresh returns the index of an empty chunk with room for n bytes: a
// reusable one if there is, else a new one.
func (a *Arena) fresh(n int) int {
	a.reclaim()
	chunks := *a.chunks.Load()
	for i, idx := range a.free {
		if len(chunks[idx].mem) >= n {
			a.free = slices.Delete(a.free, i, i+1)
			inUse.Add(int64(len(chunks[idx].mem)))
			return idx
		}
	}
	if len(chunks) == 1<<16 {
		panic("offheap: arena full") // 64 GiB
	}
	c := new(chunk)
	c.mem, c.mapped = mapChunk(max(n, a.opts.ChunkSize))
	inUse.Add(int64(len(c.mem)))
	next := append(chunks[:len(chunks):len(chunks)], c)
	a.chunks.Store(&next)
	return len(next) - 1
}

// Release marks the record h dead: its owner no longer refers to it.
func (a *Arena) Release(h Handle) {
	(*a.chunks.Load())[h.chunk()].dead += h.Len()
	a.dead += h.Len()
}

// reclaim makes the chunks that have been in limbo long enough reusable.
func (a *Arena) reclaim() {
	now := a.opts.Now()
	n := 0
	for n < len(a.limbo) && now.Sub(a.limbo[n].since) >= a.opts.Limbo {
		n++
	}
	if n == 0 {
		return
	}
	a.pin.Lock()
	defer a.pin.Unlock()
	a.epoch.Add(1)
	chunks := *a.chunks.Load()
	for _, l := range a.limbo[:n] {
		c := chunks[l.idx]
		if c.mapped {
			unmapPages(c.mem)
		}
		inUse.Add(-int64(len(c.mem)))
		c.used, c.dead = 0, 0
		a.free = append(a.free, l.idx)
	}
	a.limbo = slices.Delete(a.limbo, 0, n)
}

// Compact moves records out of the deadest chunks if dead bytes are a
// quarter of the chunks in use and at least two chunks' worth; else it
// does nothing. walk must call move with every handle the owner holds
// and replace each by what move returns (the same handle unless the
// record moved). It reports whether it compacted.
func (a *Arena) Compact(walk func(move func(Handle) Handle)) bool {
	if a.dead < 2*a.opts.ChunkSize || 4*a.dead < a.used {
		return false
	}
	victims := a.victims()
	walk(func(h Handle) Handle {
		if victims[h.chunk()] {
			return a.Append(a.String(h))
		}
		return h
	})
	a.retire(victims)
	return true
}

// victims picks the chunks to empty: the deadest first, until about four
// chunks' worth of live bytes would move. The chunk being appended to is
// never one.
func (a *Arena) victims() map[int]bool {
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
		live := chunks[i].used - chunks[i].dead
		if moved > 0 && moved+live > 4*a.opts.ChunkSize {
			break
		}
		moved += live
		out[i] = true
	}
	return out
}

// retire puts the emptied chunks in limbo, and the epoch moves on: a
// reader that started before may have read a moved record in one of
// them, and now reads it again where it moved.
func (a *Arena) retire(victims map[int]bool) {
	chunks := *a.chunks.Load()
	now := a.opts.Now()
	for i := range victims {
		c := chunks[i]
		a.used -= c.used
		a.dead -= c.dead
		c.used, c.dead = len(c.mem), 0 // nothing is appended to it until it is reused
		a.limbo = append(a.limbo, limboChunk{i, now})
	}
	a.epoch.Add(1)
}

// Pin keeps freed chunks from being reused until Unpin: for readers that
// read many records without a lock of their owner's.
func (a *Arena) Pin() { a.pin.RLock() }

// Unpin ends Pin.
func (a *Arena) Unpin() { a.pin.RUnlock() }

// Stats are an arena's sizes in bytes.
type Stats struct {
	Used   int // appended to the chunks in use
	Dead   int // of which released
	Mapped int // all chunks, in use, free or in limbo
}

// Stats returns the arena's sizes. Writers only.
func (a *Arena) Stats() Stats {
	s := Stats{Used: a.used, Dead: a.dead}
	for _, c := range *a.chunks.Load() {
		s.Mapped += len(c.mem)
	}
	return s
}
