package clientstore

import (
	"context"
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

// Backuper is a Store that can write a consistent copy of itself while it
// keeps serving reads and writes.
type Backuper interface {
	// Backup writes a point-in-time copy of the whole store to w, in a form
	// the same kind of store opens as it is (for bbolt: a database file).
	// It calls begin with the copy's exact size in bytes before the first
	// write, so callers can announce it (Content-Length). It returns the
	// number of bytes written.
	Backup(w io.Writer, begin func(size int64)) (int64, error)
}
