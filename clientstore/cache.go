package clientstore

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"sort"
	"sync"
	"time"
)

// secretKeyName names the HMAC key for client secrets in the store.
const secretKeyName = "client-secret-hmac"

// Cache holds every client in memory in front of a Store, so that token
// issuance and checks never touch the disk. Reads are lock-free; writes go
// to the Store first and replace the in-memory snapshot as soon as the Store
// acknowledges them, so a change is in effect on the very next request.
type Cache struct {
	store  Store
	hasher *Hasher
	dummy  string // a hash to verify against for unknown client ids
	now    func() time.Time

	clients sync.Map   // client_id → *Client (immutable snapshot)
	writeMu sync.Mutex // serializes writers so store and memory agree
}

// NewCache loads every client of store into memory.
func NewCache(ctx context.Context, store Store) (*Cache, error) {
	key, err := store.LoadOrCreateKey(ctx, secretKeyName, randomKey)
	if err != nil {
		return nil, err
	}
	hasher, err := NewHasher(key)
	if err != nil {
		return nil, err
	}
	c := &Cache{store: store, hasher: hasher, dummy: hasher.Hash(""), now: time.Now}
	err = store.ForEachClient(ctx, func(cl *Client) error {
		c.clients.Store(cl.ID, cl)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("loading clients: %w", err)
	}
	return c, nil
}

func randomGeneration() (uint64, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint64(b[:]) >> 1, nil // leave room to count up
}

func randomKey() ([]byte, error) {
	k := make([]byte, 32)
	_, err := rand.Read(k)
	return k, err
}

// Store is the durable store behind the cache.
func (c *Cache) Store() Store { return c.store }

// Get returns the current snapshot of a client, from memory only.
// The snapshot must not be modified.
func (c *Cache) Get(id string) (*Client, bool) {
	v, ok := c.clients.Load(id)
	if !ok {
		return nil, false
	}
	return v.(*Client), true
}

// List returns every client ordered by client_id.
func (c *Cache) List() []*Client {
	var out []*Client
	c.clients.Range(func(_, v any) bool {
		out = append(out, v.(*Client))
		return true
	})
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Authenticate returns the client if id exists and secret is its secret.
// It does not judge whether the client may use the token endpoint (it may
// be disabled): callers decide that.
func (c *Cache) Authenticate(id, secret string) (*Client, bool) {
	cl, ok := c.Get(id)
	if !ok {
		// Spend the same work as a real check, so timing does not tell
		// which client ids exist.
		c.hasher.Verify(c.dummy, secret)
		return nil, false
	}
	return cl, c.hasher.Verify(cl.SecretHash, secret)
}

// Create validates and stores a new client with a freshly generated secret,
// which it returns: it is stored only as a hash and cannot be shown again.
func (c *Cache) Create(ctx context.Context, cl *Client) (*Client, string, error) {
	cl = cl.Clone()
	if err := cl.Normalize(); err != nil {
		return nil, "", err
	}
	secret, err := GenerateSecret()
	if err != nil {
		return nil, "", err
	}
	now := c.now().UTC().Truncate(time.Second)
	cl.SecretHash = c.hasher.Hash(secret)
	// A random first generation: tokens of a deleted client must not come
	// back to life for a new client that reuses its id.
	if cl.Generation, err = randomGeneration(); err != nil {
		return nil, "", err
	}
	cl.CreatedAt, cl.UpdatedAt = now, now

	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if err := c.store.CreateClient(ctx, cl); err != nil {
		return nil, "", err
	}
	c.clients.Store(cl.ID, cl)
	return cl, secret, nil
}

// Update replaces the operator-settable fields of an existing client,
// keeping its secret, generation and creation time.
func (c *Cache) Update(ctx context.Context, cl *Client) (*Client, error) {
	cl = cl.Clone()
	if err := cl.Normalize(); err != nil {
		return nil, err
	}
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	old, ok := c.Get(cl.ID)
	if !ok {
		return nil, ErrNotFound
	}
	cl.SecretHash, cl.Generation, cl.CreatedAt = old.SecretHash, old.Generation, old.CreatedAt
	if cl.Disabled && !old.Disabled {
		// Re-enabling a client later must not bring back tokens it held
		// when it was disabled (perhaps because they leaked).
		cl.Generation++
	}
	cl.UpdatedAt = c.now().UTC().Truncate(time.Second)
	if err := c.store.UpdateClient(ctx, cl); err != nil {
		return nil, err
	}
	c.clients.Store(cl.ID, cl)
	return cl, nil
}

// Delete removes a client; every token it holds stops working at once.
func (c *Cache) Delete(ctx context.Context, id string) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if err := c.store.DeleteClient(ctx, id); err != nil {
		return err
	}
	c.clients.Delete(id)
	return nil
}
