package clientstore

import (
	"context"
	"time"
)

// Store is durable storage for clients, key material and token
// revocations. Every write is durable once the method returns nil.
// Implementations need not cache: Cache does that.
type Store interface {
	// CreateClient stores a new client; ErrExists if the id is taken.
	CreateClient(ctx context.Context, c *Client) error
	// UpdateClient replaces an existing client; ErrNotFound if absent.
	UpdateClient(ctx context.Context, c *Client) error
	// DeleteClient removes a client; ErrNotFound if absent.
	DeleteClient(ctx context.Context, id string) error
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
