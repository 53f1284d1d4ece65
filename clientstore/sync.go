package clientstore

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Follower keeps an in-memory view of a store current: the Cache (clients
// and the secret-hashing key) and the token revocations follow a Sync.
type Follower interface {
	// Reset replaces the whole view with a snapshot's. An error names what
	// it could not take over; the rest is taken over.
	Reset(snap *Snapshot) error
	// Apply applies changes in store order, reporting as Reset does.
	Apply(changes []Change) error
}

// Exporter is a Follower that can hand its view back, for the local
// snapshot of a node on etcd (see Sync.Export).
type Exporter interface {
	// Export adds the follower's part of the view to snap.
	Export(snap *Snapshot)
}

// DefaultStaleAfter is how long a watched view may go without hearing
// from the store before Sync reports it stale (and logs so).
const DefaultStaleAfter = 3 * time.Second

// SyncStatus is how current a node's view of its store is.
type SyncStatus struct {
	// Watching: the store is shared and watched (etcd). A store that is
	// not (bbolt) is always current: this process is its only writer.
	Watching bool
	// Revision is the store revision the view is known current at.
	Revision int64
	// LastSync is when the store last confirmed the view (an event, a
	// heartbeat or a full reload).
	LastSync time.Time
	// Resyncs counts full reloads after the initial one.
	Resyncs int64
	// LastError is the last watch or reload failure, if any, and when.
	LastError   string
	LastErrorAt time.Time
}

// Age is how long ago the store last confirmed the view; 0 for a store
// that is not watched.
func (st SyncStatus) Age(now time.Time) time.Duration {
	if !st.Watching || st.LastSync.IsZero() {
		return 0
	}
	return max(now.Sub(st.LastSync), 0)
}

// Sync keeps followers current with a store. On a Watcher it loads a
// snapshot, then applies the watch from the snapshot's revision on; when
// the watch fails (compaction, a restored etcd, a closed stream) it loads
// everything again and watches from there, so a change is never missed
// silently. On other stores it only reloads on Refresh (after a restore).
type Sync struct {
	src        Snapshotter
	watcher    Watcher // nil: not watched
	logger     *zap.Logger
	staleAfter time.Duration

	applyMu sync.Mutex // serializes what followers see, in store order

	mu        sync.Mutex // guards the three below; never held while followers run
	followers []Follower
	keyFns    map[string][]func([]byte)
	keys      map[string][]byte // latest known key material

	revision atomic.Int64
	changes  atomic.Int64 // snapshots and batches of changes handed to followers
	lastSync atomic.Int64 // Unix nanoseconds
	resyncs  atomic.Int64
	lastErr  atomic.Pointer[syncError]

	refresh chan chan error
	cancel  context.CancelFunc
	done    chan struct{}
}

type syncError struct {
	msg string
	at  time.Time
}

// NewSync prepares a Sync for store (logger may be nil). Add followers,
// then Start it.
func NewSync(store Snapshotter, logger *zap.Logger) *Sync {
	if logger == nil {
		logger = zap.NewNop()
	}
	s := &Sync{
		src: store, logger: logger, staleAfter: DefaultStaleAfter,
		keyFns: map[string][]func([]byte){}, keys: map[string][]byte{},
		refresh: make(chan chan error),
	}
	s.watcher, _ = store.(Watcher)
	return s
}

// SetStaleAfter changes when the view counts as stale (DefaultStaleAfter).
func (s *Sync) SetStaleAfter(d time.Duration) { s.staleAfter = d }

// Follow adds a follower. Call it before Start.
func (s *Sync) Follow(f Follower) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.followers = append(s.followers, f)
}

// FollowKey calls fn with the material of key name now (if known) and
// whenever it changes, in store order. Safe at any time.
func (s *Sync) FollowKey(name string, fn func([]byte)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keyFns[name] = append(s.keyFns[name], fn)
	if v, ok := s.keys[name]; ok {
		fn(v)
	}
}

// Start loads a snapshot into the followers and begins watching, for a
// Watcher; for other stores it does nothing (their followers loaded
// themselves). The first load must succeed: a node without its state
// cannot serve.
func (s *Sync) Start(ctx context.Context) error {
	if s.watcher == nil {
		s.cancel, s.done = func() {}, make(chan struct{})
		close(s.done)
		return nil
	}
	snap, err := s.src.Snapshot(ctx)
	if err != nil {
		return err
	}
	return s.StartFrom(ctx, snap, time.Now())
}

// StartFrom is Start from a snapshot read earlier, as of asOf (a node's
// local snapshot, when the store cannot be reached): the followers get it,
// the view counts as confirmed at asOf, and the watch takes up from the
// snapshot's revision, or everything is loaded again if the store has
// discarded that history. Only for a Watcher.
func (s *Sync) StartFrom(ctx context.Context, snap *Snapshot, asOf time.Time) error {
	if s.watcher == nil {
		return errors.New("store sync: only a watched store starts from a snapshot")
	}
	if err := s.reset(snap); err != nil {
		return err
	}
	s.lastSync.Store(asOf.UnixNano())
	ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	s.done = make(chan struct{})
	go s.run(ctx, snap.Revision)
	go s.monitor(ctx)
	return nil
}

// Changes counts what the followers were handed (snapshots and batches of
// changes): when it moves, their view changed. Heartbeats do not count.
func (s *Sync) Changes() int64 { return s.changes.Load() }

// Export returns the followers' view as a snapshot at the revision it
// reflects: what a node on etcd keeps in its local snapshot file.
// Followers that are no Exporter are left out.
func (s *Sync) Export() *Snapshot {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	snap := &Snapshot{Revision: s.revision.Load(), Keys: map[string][]byte{}, Revocations: map[string]time.Time{}}
	s.mu.Lock()
	for name, v := range s.keys {
		snap.Keys[name] = v
	}
	s.mu.Unlock()
	for _, f := range s.followerList() {
		if e, ok := f.(Exporter); ok {
			e.Export(snap)
		}
	}
	return snap
}

// Stop ends the watch.
func (s *Sync) Stop() {
	if s.cancel != nil {
		s.cancel()
		<-s.done
	}
}

// Status reports how current the view is.
func (s *Sync) Status() SyncStatus {
	st := SyncStatus{Watching: s.watcher != nil, Revision: s.revision.Load(), Resyncs: s.resyncs.Load()}
	if ns := s.lastSync.Load(); ns != 0 {
		st.LastSync = time.Unix(0, ns)
	}
	if e := s.lastErr.Load(); e != nil {
		st.LastError, st.LastErrorAt = e.msg, e.at
	}
	return st
}

// Refresh reloads everything from the store and waits until the followers
// have it: after a restore wrote behind the followers' back. On a watched
// store the watch restarts from the new snapshot's revision.
func (s *Sync) Refresh(ctx context.Context) error {
	if s.watcher == nil {
		snap, err := s.src.Snapshot(ctx)
		if err != nil {
			return err
		}
		return s.reset(snap)
	}
	reply := make(chan error, 1)
	select {
	case s.refresh <- reply:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		return errors.New("store sync stopped")
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// reset hands a snapshot to the followers. It reports what they could not
// take over; the rest is in effect.
func (s *Sync) reset(snap *Snapshot) error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	var errs []error
	for _, f := range s.followerList() {
		errs = append(errs, f.Reset(snap))
	}
	s.mu.Lock()
	for name, v := range snap.Keys {
		if old, ok := s.keys[name]; !ok || string(old) != string(v) {
			s.keys[name] = v
			for _, fn := range s.keyFns[name] {
				fn(v)
			}
		}
	}
	s.mu.Unlock()
	if snap.Revision > 0 {
		s.revision.Store(snap.Revision)
	}
	s.changes.Add(1)
	s.lastSync.Store(time.Now().UnixNano())
	return errors.Join(errs...)
}

func (s *Sync) followerList() []Follower {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.followers)
}

func (s *Sync) apply(b WatchBatch) {
	if len(b.Changes) > 0 {
		s.applyMu.Lock()
		var errs []error
		for _, f := range s.followerList() {
			errs = append(errs, f.Apply(b.Changes))
		}
		s.mu.Lock()
		for _, ch := range b.Changes {
			if ch.Kind == KeyPut {
				s.keys[ch.Name] = ch.Value
				for _, fn := range s.keyFns[ch.Name] {
					fn(ch.Value)
				}
			}
		}
		s.mu.Unlock()
		s.changes.Add(1)
		s.applyMu.Unlock()
		if err := errors.Join(errs...); err != nil {
			s.fail(err)
			s.logger.Error("store change not taken over: this node keeps what it had", zap.Int64("revision", b.Revision), zap.Error(err))
		}
	}
	if b.Revision > s.revision.Load() {
		s.revision.Store(b.Revision)
	}
	s.lastSync.Store(time.Now().UnixNano())
}

func (s *Sync) fail(err error) {
	s.lastErr.Store(&syncError{msg: err.Error(), at: time.Now()})
}

// run watches from rev, and reloads everything whenever the watch ends.
func (s *Sync) run(ctx context.Context, rev int64) {
	defer close(s.done)
	for {
		wctx, cancel := context.WithCancel(ctx)
		errc := make(chan error, 1)
		go func() { errc <- s.watcher.Watch(wctx, rev+1, s.apply) }()
		var reply chan error
		select {
		case err := <-errc:
			cancel()
			if ctx.Err() != nil {
				return
			}
			s.fail(err)
			if errors.Is(err, ErrCompacted) {
				s.logger.Warn("store history compacted past this node's view: reloading everything", zap.Error(err))
			} else {
				s.logger.Warn("store watch ended: reloading everything", zap.Error(err))
			}
		case reply = <-s.refresh:
			cancel()
			<-errc
		case <-ctx.Done():
			cancel()
			<-errc
			return
		}
		snap, err := s.resync(ctx)
		if reply != nil {
			reply <- err
		}
		if err != nil { // ctx ended
			return
		}
		rev = snap.Revision
	}
}

// resync loads a snapshot into the followers, retrying until it works or
// ctx ends.
func (s *Sync) resync(ctx context.Context) (*Snapshot, error) {
	wait := 100 * time.Millisecond
	for {
		snap, err := s.src.Snapshot(ctx)
		if err == nil {
			if err := s.reset(snap); err != nil {
				s.fail(err)
				s.logger.Error("store view reloaded without some of it", zap.Error(err))
			}
			s.resyncs.Add(1)
			s.logger.Info("store view reloaded", zap.Int64("revision", snap.Revision), zap.Int("clients", len(snap.Clients)))
			return snap, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		s.fail(err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// monitor logs when the view goes stale (the store is unreachable: this
// node serves from memory) and when it is current again.
func (s *Sync) monitor(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var staleSince, lastLog time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			st := s.Status()
			age := st.Age(now)
			switch {
			case age > s.staleAfter && staleSince.IsZero():
				staleSince, lastLog = st.LastSync, now
				s.logger.Warn("store unreachable: serving from memory; writes fail until it is back",
					zap.Duration("stale_for", age), zap.Time("view_as_of", st.LastSync), zap.String("last_error", st.LastError))
			case age > s.staleAfter && now.Sub(lastLog) >= 30*time.Second:
				lastLog = now
				s.logger.Warn("store still unreachable: serving from memory",
					zap.Duration("stale_for", age), zap.Time("view_as_of", st.LastSync), zap.String("last_error", st.LastError))
			case age <= s.staleAfter && !staleSince.IsZero():
				s.logger.Info("store reachable again: view current", zap.Duration("was_stale_for", now.Sub(staleSince)),
					zap.Int64("revision", st.Revision))
				staleSince = time.Time{}
			}
		}
	}
}
