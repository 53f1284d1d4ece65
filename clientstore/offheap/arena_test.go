package offheap

import (
	"strings"
	"testing"
	"time"
)

// Records read back; released ones are reclaimed by Compact, which moves
// the live ones of the deadest chunks; emptied chunks are reused only
// after their limbo, and the epoch moves on with each step.
func TestArenaCompactsAndReuses(t *testing.T) {
	clock := time.Unix(0, 0)
	const limbo = time.Second
	a := New(Options{ChunkSize: 1 << 10, Limbo: limbo, Now: func() time.Time { return clock }})
	var live []Handle
	var want []string // of live
	for i := range 64 {
		s := strings.Repeat(string(rune('a'+i%26)), 100+i)
		h := a.Append(s)
		if got := a.String(h); got != s || h.Len() != len(s) {
			t.Fatalf("record %d reads %q", i, got)
		}
		if i%4 == 0 {
			live = append(live, h)
			want = append(want, s)
		} else {
			a.Release(h)
		}
	}
	before := a.Stats()
	if InUse() != int64(before.Mapped) {
		t.Errorf("InUse = %d, the only arena maps %d", InUse(), before.Mapped)
	}
	epoch := a.Epoch()
	if !a.Compact(func(move func(Handle) Handle) {
		for i, h := range live {
			live[i] = move(h)
		}
	}) {
		t.Fatalf("no compaction with %d of %d bytes dead", before.Dead, before.Used)
	}
	after := a.Stats()
	if after.Dead >= before.Dead || a.Epoch() == epoch {
		t.Errorf("compaction left %d dead bytes of %d, epoch %d → %d", after.Dead, before.Dead, epoch, a.Epoch())
	}
	for i, h := range live {
		if got := a.String(h); got != want[i] {
			t.Fatalf("live record %d reads %q after compaction, want %q", i, got, want[i])
		}
	}
	// New records go to fresh chunks until the limbo is over, then to
	// reused ones.
	a.Append(strings.Repeat("x", 1000))
	if got := a.Stats().Mapped; got <= after.Mapped {
		t.Errorf("a chunk in limbo was reused: %d bytes mapped, %d before", got, after.Mapped)
	}
	clock = clock.Add(limbo)
	mapped := a.Stats().Mapped
	for range 4 {
		a.Append(strings.Repeat("y", 1000))
	}
	if got := a.Stats().Mapped; got != mapped {
		t.Errorf("freed chunks were not reused: %d bytes mapped, %d before", got, mapped)
	}
	if st := a.Stats(); InUse() != int64(st.Mapped-len(a.free)*(1<<10)) {
		t.Errorf("InUse = %d with %d bytes mapped and %d chunks free", InUse(), st.Mapped, len(a.free))
	}
}
