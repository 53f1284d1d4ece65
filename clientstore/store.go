package clientstore

import (
	"context"
	"errors"
	"io"
	"time"
)

// Store is durable storage for clients, key material and token
// revocations. Every write is durable once the method returns nil.
// Implementations need not cache: Cache does that.
//
// Every client write assigns the client a new Revision, never reused within
// the store (deleting and re-creating an id gives a higher one), and sets
// it on the *Client passed in. Conditional writes compare the stored
// revision inside the same transaction as the write, so of two writers
// expecting the same revision exactly one succeeds. An etcd implementation
// maps this onto a transaction comparing the key's mod revision.
type Store interface {
	// CreateClient stores a new client; ErrExists if the id is taken.
	CreateClient(ctx context.Context, c *Client) error
	// UpdateClient replaces an existing client; ErrNotFound if absent.
	UpdateClient(ctx context.Context, c *Client) error
	// UpdateClientIf replaces an existing client only if its stored
	// revision is rev (any revision if rev is 0): ErrNotFound if absent,
	// ErrRevisionMismatch if it is at another revision.
	UpdateClientIf(ctx context.Context, c *Client, rev uint64) error
	// DeleteClient removes a client; ErrNotFound if absent.
	DeleteClient(ctx context.Context, id string) error
	// DeleteClientIf removes a client only if its stored revision is rev
	// (any revision if rev is 0); errors as UpdateClientIf.
	DeleteClientIf(ctx context.Context, id string, rev uint64) error
	// GetClient reads one client; ErrNotFound if absent.
	GetClient(ctx context.Context, id string) (*Client, error)
	// ForEachClient calls fn for every client in client_id order.
	ForEachClient(ctx context.Context, fn func(*Client) error) error

	// LoadOrCreateKey returns the key material stored under name, storing
	// the result of create first if there is none yet. Key material is
	// created once per store, never per process.
	LoadOrCreateKey(ctx context.Context, name string, create func() ([]byte, error)) ([]byte, error)
	// SwapKey replaces the key material stored under name with next, only
	// if it is still old (checked in the same transaction as the write):
	// ErrKeyChanged otherwise. It is how key rings rotate without two
	// writers losing each other's keys.
	SwapKey(ctx context.Context, name string, old, next []byte) error

	// Revoke records that the token with the given id is revoked until the
	// time it would have expired anyway.
	Revoke(ctx context.Context, tokenID string, until time.Time) error
	// ForEachRevocation calls fn for every recorded revocation.
	ForEachRevocation(ctx context.Context, fn func(tokenID string, until time.Time) error) error
	// PruneRevocations drops revocations whose token has expired by now.
	PruneRevocations(ctx context.Context, now time.Time) error

	// Close releases the store.
	Close() error
}

// Snapshot is the whole content of a store at one point in time.
type Snapshot struct {
	// Revision is the store revision the snapshot was read at; a watch
	// from Revision+1 misses nothing. Zero for stores without revisions.
	Revision    int64
	Clients     []*Client // in client_id order
	Keys        map[string][]byte
	Revocations map[string]time.Time
}

// Snapshotter is a Store that can read all of itself consistently: clients,
// keys and revocations as of one instant.
type Snapshotter interface {
	Snapshot(ctx context.Context) (*Snapshot, error)
}

// ChangeKind says what a Change did.
type ChangeKind int

// Kinds of changes a Watcher reports.
const (
	ClientPut ChangeKind = iota + 1
	ClientDeleted
	KeyPut
	RevocationPut
	RevocationDeleted
)

// Change is one write to a shared store, made by any process using it.
type Change struct {
	Kind     ChangeKind
	Revision int64     // the store revision of this write
	Name     string    // client id, key name or revoked id
	Client   *Client   // ClientPut: the client as stored (Revision set)
	Value    []byte    // KeyPut: the key material
	Until    time.Time // RevocationPut: until when the id is revoked
}

// WatchBatch is one answer of a watch: the changes of one or more
// revisions in store order, or none at all when the store only confirms
// that everything up to Revision has been delivered (a heartbeat).
type WatchBatch struct {
	Revision int64 // the store's revision when the batch was sent
	Changes  []Change
}

// Watcher is a Store that several processes share (etcd): it reports
// every change, whoever made it, so that each process can keep its memory
// current. BoltStore is no Watcher: its file has one writer, this process.
type Watcher interface {
	Snapshotter
	// Watch calls fn for every batch of changes from revision from on, in
	// order, until ctx ends (it returns ctx's error) or the watch fails. It
	// never skips a change silently: if the store can no longer deliver
	// the changes since from (compaction), it fails with ErrCompacted and
	// the caller must take a new Snapshot. While the store is unreachable
	// it keeps trying and delivers nothing; fn also gets empty batches as
	// heartbeats while the store is reachable and quiet.
	Watch(ctx context.Context, from int64, fn func(WatchBatch)) error
}

// Backuper is a Store that can write a consistent copy of itself while it
// keeps serving reads and writes.
type Backuper interface {
	// Backup writes a point-in-time copy of the whole store to w as a
	// bbolt database file (for every backend: a backup of an etcd store
	// opens as a BoltStore and restores into any store, see Restore).
	// It calls begin with the copy's exact size in bytes before the first
	// write, so callers can announce it (Content-Length). It returns the
	// number of bytes written.
	Backup(w io.Writer, begin func(size int64)) (int64, error)
}

// ErrUsed is returned by RecordOnce for an id recorded before that has not
// expired yet.
var ErrUsed = errors.New("one-time id already used")

// OnceRecorder is a Store that records one-time ids (the jti of client
// assertions, RFC 7523 §3) atomically: of several nodes recording the same
// unexpired id, exactly one succeeds. Ids share the revocations' records
// and pruning.
type OnceRecorder interface {
	// RecordOnce stores id until the given time, or fails with ErrUsed if
	// it is already stored and has not expired by now.
	RecordOnce(ctx context.Context, id string, until, now time.Time) error
}
