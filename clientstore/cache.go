package clientstore

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// secretKeyName names the HMAC key for client secrets in the store.
const secretKeyName = "client-secret-hmac"

// Secret rotation grace periods.
const (
	// DefaultSecretGracePeriod is how long a rotated-away secret keeps
	// working unless the caller says otherwise.
	DefaultSecretGracePeriod = 24 * time.Hour
	// MaxSecretGracePeriod bounds it: a "rotated" secret that stays valid
	// for months is not rotated.
	MaxSecretGracePeriod = 30 * 24 * time.Hour
)

// maxStaleRetries bounds how often a write is recomputed when the store
// turns out to hold a newer client than memory (another writer on a shared
// store); with bbolt, memory and disk agree and this never happens.
const maxStaleRetries = 3

// Cache holds every client in memory in front of a Store, so that token
// issuance and checks never touch the disk. Reads are lock-free; writes go
// to the Store first and replace the in-memory client as soon as the Store
// acknowledges them, so a change is in effect on the very next request.
// Clients are kept packed (see packed): Get decodes one for its caller.
type Cache struct {
	store   Store
	secrets atomic.Pointer[secretHasher] // replaced only by a restore
	clock   atomic.Pointer[func() time.Time]

	clients *clientMap // client_id → packed client
	writeMu sync.Mutex // serializes writers so store and memory agree

	// failureFloor is how long a failed Authenticate takes at least, in
	// nanoseconds: a margin over the slowest verification of an imported
	// hash measured (hashCosts, by hash parameters, under writeMu). 0 while
	// every hash is Gatehouse's own, whose checks all take the same
	// microsecond.
	failureFloor atomic.Int64
	hashCosts    map[string]time.Duration
}

// secretHasher is the secret-hashing key in use and a hash to verify
// against for unknown client ids.
type secretHasher struct {
	*Hasher
	dummy string
}

func newSecretHasher(key []byte) (*secretHasher, error) {
	h, err := NewHasher(key)
	if err != nil {
		return nil, err
	}
	return &secretHasher{Hasher: h, dummy: h.Hash("")}, nil
}

// NewCache loads every client of store into memory.
func NewCache(ctx context.Context, store Store) (*Cache, error) {
	key, err := store.LoadOrCreateKey(ctx, secretKeyName, randomKey)
	if err != nil {
		return nil, err
	}
	h, err := newSecretHasher(key)
	if err != nil {
		return nil, err
	}
	c := &Cache{store: store, clients: newClientMap(), hashCosts: map[string]time.Duration{}}
	c.secrets.Store(h)
	load := c.clients.edit()
	err = store.ForEachClient(ctx, func(cl *Client) error {
		p, err := c.pack(cl)
		if err != nil {
			return fmt.Errorf("client %s: %w", cl.ID, err)
		}
		load.put(p)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("loading clients: %w", err)
	}
	load.commit()
	return c, nil
}

// SetClock replaces the cache's time source (nil: the system clock). Only
// timestamps and the expiry of rotated-away secrets depend on it; tests use
// it to step past a grace period without sleeping.
func (c *Cache) SetClock(now func() time.Time) {
	if now == nil {
		c.clock.Store(nil)
		return
	}
	c.clock.Store(&now)
}

func (c *Cache) now() time.Time {
	if f := c.clock.Load(); f != nil {
		return (*f)()
	}
	return time.Now()
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

func (c *Cache) hasher() *secretHasher { return c.secrets.Load() }

// Store is the durable store behind the cache.
func (c *Cache) Store() Store { return c.store }

// Get returns the current state of a client, from memory only, decoded
// for the caller: changing it changes nothing else. Its Revision tells
// whether it is still current (see Revision).
func (c *Cache) Get(id string) (*Client, bool) {
	p, ok := c.clients.load(id)
	if !ok {
		return nil, false
	}
	return p.client(), true
}

// Revision returns the revision of the client id, from memory and without
// decoding or allocating: what the hot path compares with the Revision of
// a client it got earlier to know whether that one is still current. Every
// write of a client gives it a new revision, never reused, not even by a
// client created again under the same id.
func (c *Cache) Revision(id string) (uint64, bool) {
	p, ok := c.clients.load(id)
	if !ok {
		return 0, false
	}
	return p.revision(), true
}

// Len is the number of clients.
func (c *Cache) Len() int { return c.clients.len() }

// List returns every client ordered by client_id.
func (c *Cache) List() []*Client {
	page, _, _ := c.Page(ListOptions{})
	return page
}

// ListOptions selects a page of clients.
type ListOptions struct {
	// After is the client_id the previous page ended with ("" for the
	// first page). Paging by key keeps pages stable while clients come and
	// go: nothing is skipped or repeated that existed throughout.
	After string
	// Limit is the page size; 0 or less means no limit.
	Limit int
	// Owner, if not nil, keeps only the clients with this exact owner.
	Owner *string
}

// Page returns the clients after opts.After in client_id order, at most
// opts.Limit of them, whether more follow, and how many clients match the
// filter in all.
func (c *Cache) Page(opts ListOptions) (page []*Client, more bool, total int) {
	all := make([]packed, 0, c.clients.len())
	c.clients.each(func(p packed) { all = append(all, p) })
	slices.SortFunc(all, func(a, b packed) int { return strings.Compare(a.id(), b.id()) })
	for _, p := range all {
		var cl *Client
		if opts.Owner != nil {
			if cl = p.client(); cl.Owner != *opts.Owner {
				continue
			}
		}
		total++
		if p.id() <= opts.After {
			continue
		}
		if opts.Limit > 0 && len(page) == opts.Limit {
			more = true
			continue
		}
		if cl == nil {
			cl = p.client()
		}
		page = append(page, cl)
	}
	return page, more, total
}

// Authenticate returns the client if id exists and secret is its secret,
// or its previous secret while that one's grace period lasts. It does not
// judge whether the client may use the token endpoint (it may be
// disabled): callers decide that.
//
// A failure takes as long as the slowest check of an imported hash would,
// whatever the client id: without that, the milliseconds of a bcrypt or
// PBKDF2 hash against the microsecond of Gatehouse's own would tell which
// ids exist and which were imported.
func (c *Cache) Authenticate(id, secret string) (*Client, bool) {
	start := time.Now()
	cl, ok := c.authenticate(id, secret)
	if !ok {
		if wait := time.Duration(c.failureFloor.Load()) - time.Since(start); wait > 0 {
			time.Sleep(wait)
		}
	}
	return cl, ok
}

func (c *Cache) authenticate(id, secret string) (*Client, bool) {
	cl, ok := c.Get(id)
	if !ok {
		// Spend the same work as a real check of a Gatehouse hash.
		h := c.hasher()
		h.Verify(h.dummy, secret)
		return nil, false
	}
	h := c.hasher()
	ok = h.Verify(cl.SecretHash, secret)
	if cl.PreviousSecretHash != "" && c.now().Before(cl.PreviousSecretExpiresAt) {
		// Checked whichever way the first check went, so the time taken
		// does not tell which of the two secrets was presented.
		prev := h.Verify(cl.PreviousSecretHash, secret)
		ok = ok || prev
	}
	return cl, ok
}

// measureHashes times, once per set of hash parameters, a failed check of
// cl's imported hashes, and raises the failure floor to a margin over the
// slowest. Callers hold writeMu (or are loading the cache, alone). The
// floor never comes down while the process runs: deleting the last such
// client leaves it, erring on the side of hiding.
func (c *Cache) measureHashes(cl *Client) {
	for _, hash := range []string{cl.SecretHash, cl.PreviousSecretHash} {
		params, ok := importedParams(hash)
		if !ok {
			continue
		}
		if _, done := c.hashCosts[params]; done {
			continue
		}
		var cost time.Duration
		for range 2 { // the slower of two: the first may pay for cold caches
			start := time.Now()
			c.hasher().Verify(hash, "")
			cost = max(cost, time.Since(start))
		}
		c.hashCosts[params] = cost
		if floor := cost * 5 / 4; int64(floor) > c.failureFloor.Load() {
			c.failureFloor.Store(int64(floor))
		}
	}
}

// Create validates and stores a new client with a freshly generated secret,
// which it returns: it is stored only as a hash and cannot be shown again.
func (c *Cache) Create(ctx context.Context, cl *Client) (*Client, string, error) {
	cl = cl.Clone()
	cl.CreatedAt = time.Time{}
	return c.create(ctx, cl, "")
}

// Import stores a client brought over from another server (Ory Hydra). With
// a secretHash (see CheckImportedHash) the client keeps its existing
// secret and the returned secret is empty; without one a new secret is
// generated and returned, as by Create. A non-zero cl.CreatedAt is kept.
func (c *Cache) Import(ctx context.Context, cl *Client, secretHash string) (*Client, string, error) {
	if secretHash != "" {
		if err := CheckImportedHash(secretHash); err != nil {
			return nil, "", err
		}
	}
	return c.create(ctx, cl.Clone(), secretHash)
}

// create stores cl, a copy the caller no longer uses.
func (c *Cache) create(ctx context.Context, cl *Client, secretHash string) (*Client, string, error) {
	if err := cl.Normalize(); err != nil {
		return nil, "", err
	}
	var secret string
	if secretHash == "" {
		var err error
		if secret, err = GenerateSecret(); err != nil {
			return nil, "", err
		}
		secretHash = c.hasher().Hash(secret)
	}
	now := c.now().UTC().Truncate(time.Second)
	cl.SecretHash = secretHash
	cl.PreviousSecretHash, cl.PreviousSecretExpiresAt = "", time.Time{}
	// A random first generation: tokens of a deleted client must not come
	// back to life for a new client that reuses its id.
	var err error
	if cl.Generation, err = randomGeneration(); err != nil {
		return nil, "", err
	}
	if cl.CreatedAt.IsZero() {
		cl.CreatedAt = now
	} else {
		cl.CreatedAt = cl.CreatedAt.UTC().Truncate(time.Second)
	}
	cl.UpdatedAt = now

	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if err := c.store.CreateClient(ctx, cl); err != nil {
		return nil, "", err
	}
	if err := c.put(cl); err != nil {
		return nil, "", err
	}
	return cl, secret, nil
}

// Update replaces the operator-settable fields of an existing client,
// keeping its secret, generation and creation time.
func (c *Cache) Update(ctx context.Context, cl *Client) (*Client, error) {
	cl = cl.Clone()
	return c.Modify(ctx, cl.ID, 0, func(*Client) (*Client, error) { return cl, nil })
}

// Modify changes an existing client: edit gets a copy of the current
// client and returns the wanted operator-settable state (as Update takes
// it); the secret, generation and creation time are kept whatever edit
// returns. With ifRevision non-zero the write happens only if the client
// is still at that revision (ErrRevisionMismatch otherwise), checked in the
// same store transaction as the write. edit runs under the cache's write
// lock: it must be quick and must not call back into the cache.
func (c *Cache) Modify(ctx context.Context, id string, ifRevision uint64, edit func(cur *Client) (*Client, error)) (*Client, error) {
	return c.replace(ctx, id, ifRevision, func(cur *Client, now time.Time) (*Client, error) {
		next, err := edit(cur.Clone())
		if err != nil {
			return nil, err
		}
		next = next.Clone()
		if next.ID != id {
			return nil, fieldErr("client_id", "cannot be changed (%q is %q)", id, next.ID)
		}
		if err := next.Normalize(); err != nil {
			return nil, err
		}
		next.SecretHash, next.Generation, next.CreatedAt = cur.SecretHash, cur.Generation, cur.CreatedAt
		next.PreviousSecretHash, next.PreviousSecretExpiresAt = cur.PreviousSecretHash, cur.PreviousSecretExpiresAt
		if next.Disabled && !cur.Disabled {
			// Re-enabling a client later must not bring back tokens it held
			// when it was disabled (perhaps because they leaked).
			next.Generation++
		}
		return next, nil
	})
}

// RotateSecret gives a client a new secret, which it returns: it is stored
// only as a hash and cannot be shown again. The secret it replaces keeps
// authenticating for grace (only the latest replaced secret: rotating again
// ends the previous grace period). With grace 0 the old secret stops at
// once, and so does every token the client holds (its generation changes).
// Tokens minted before a rotation with grace > 0 stay valid until they
// expire. ifRevision works as for Modify.
func (c *Cache) RotateSecret(ctx context.Context, id string, grace time.Duration, ifRevision uint64) (*Client, string, error) {
	if grace < 0 || grace > MaxSecretGracePeriod {
		return nil, "", fieldErr("grace_period", "must be between 0s and %s", MaxSecretGracePeriod)
	}
	secret, err := GenerateSecret()
	if err != nil {
		return nil, "", err
	}
	hash := c.hasher().Hash(secret)
	cl, err := c.replace(ctx, id, ifRevision, func(cur *Client, now time.Time) (*Client, error) {
		next := cur.Clone()
		next.SecretHash = hash
		if grace > 0 {
			next.PreviousSecretHash, next.PreviousSecretExpiresAt = cur.SecretHash, now.Add(grace).UTC()
		} else {
			next.PreviousSecretHash, next.PreviousSecretExpiresAt = "", time.Time{}
			next.Generation++
		}
		return next, nil
	})
	if err != nil {
		return nil, "", err
	}
	return cl, secret, nil
}

// replace is the read-modify-write behind every change of an existing
// client. Under the write lock it computes the next state from the current
// snapshot and writes it on the condition that the store still holds that
// snapshot's revision, so a write is never based on a stale read. If the
// store holds something newer (a writer this cache did not see), the
// client is reloaded and, unless the caller pinned a revision, the change
// is recomputed on the fresh state.
func (c *Cache) replace(ctx context.Context, id string, ifRevision uint64, next func(cur *Client, now time.Time) (*Client, error)) (*Client, error) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	for attempt := 0; ; attempt++ {
		cur, ok := c.Get(id)
		if !ok {
			return nil, ErrNotFound
		}
		if ifRevision != 0 && cur.Revision != ifRevision {
			return nil, ErrRevisionMismatch
		}
		now := c.now().UTC()
		n, err := next(cur, now)
		if err != nil {
			return nil, err
		}
		if n.PreviousSecretHash != "" && !now.Before(n.PreviousSecretExpiresAt) {
			n.PreviousSecretHash, n.PreviousSecretExpiresAt = "", time.Time{}
		}
		n.UpdatedAt = now.Truncate(time.Second)
		err = c.store.UpdateClientIf(ctx, n, cur.Revision)
		if errors.Is(err, ErrRevisionMismatch) || errors.Is(err, ErrNotFound) {
			if rerr := c.reload(ctx, id); rerr != nil {
				return nil, rerr
			}
			if errors.Is(err, ErrRevisionMismatch) && ifRevision == 0 && attempt < maxStaleRetries {
				continue
			}
			return nil, err
		}
		if err != nil {
			return nil, err
		}
		if err := c.put(n); err != nil {
			return nil, err
		}
		return n, nil
	}
}

// reload replaces the in-memory state of one client with the store's.
func (c *Cache) reload(ctx context.Context, id string) error {
	cl, err := c.store.GetClient(ctx, id)
	switch {
	case errors.Is(err, ErrNotFound):
		c.clients.remove(id)
		return nil
	case err != nil:
		return fmt.Errorf("reloading client %s: %w", id, err)
	}
	if err := c.put(cl); err != nil {
		return fmt.Errorf("reloading client %s: %w", id, err)
	}
	return nil
}

// put makes cl, as the store has it, the client of its ID in memory. It
// fails only for a client whose metadata does not encode, which Validate
// refuses before anything is written.
func (c *Cache) put(cl *Client) error {
	p, err := c.pack(cl)
	if err != nil {
		return err
	}
	c.clients.store(p)
	return nil
}

// pack packs cl for memory, the one way every client enters it, and
// accounts for the cost of checking its imported hashes (measureHashes).
func (c *Cache) pack(cl *Client) (packed, error) {
	p, err := pack(cl)
	if err != nil {
		return "", err
	}
	c.measureHashes(cl)
	return p, nil
}

// Delete removes a client; every token it holds stops working at once.
func (c *Cache) Delete(ctx context.Context, id string) error {
	return c.DeleteIf(ctx, id, 0)
}

// DeleteIf removes a client if it is at revision ifRevision (any revision
// if 0), checked in the same store transaction as the delete.
func (c *Cache) DeleteIf(ctx context.Context, id string, ifRevision uint64) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	err := c.store.DeleteClientIf(ctx, id, ifRevision)
	switch {
	case err == nil, errors.Is(err, ErrNotFound):
		c.clients.remove(id)
	case errors.Is(err, ErrRevisionMismatch):
		if rerr := c.reload(ctx, id); rerr != nil {
			return rerr
		}
	}
	return err
}

// Reset implements Follower: the clients become the snapshot's. On a store
// with global revisions (etcd), a client this node wrote after the
// snapshot was read (a higher revision) is kept: the watch that follows
// the snapshot brings it anyway, and memory never goes back meanwhile.
// What cannot be used (a secret-hashing key of the wrong size) is left
// out and reported.
func (c *Cache) Reset(snap *Snapshot) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	var errs []error
	if key, ok := snap.Keys[secretKeyName]; ok {
		errs = append(errs, c.setSecretKey(key))
	}
	fresh := make(map[string]*Client, len(snap.Clients))
	for _, cl := range snap.Clients {
		fresh[cl.ID] = cl
	}
	newer := func(rev uint64) bool { return snap.Revision > 0 && rev > uint64(snap.Revision) }
	e := c.clients.edit()
	c.clients.each(func(cur packed) {
		if id := cur.id(); fresh[id] == nil && !newer(cur.revision()) {
			e.delete(id)
		}
	})
	for id, cl := range fresh {
		if rev, ok := c.Revision(id); ok && (rev == cl.Revision || newer(rev)) {
			continue // unchanged
		}
		p, err := c.pack(cl)
		if err != nil {
			errs = append(errs, fmt.Errorf("client %s: %w", id, err))
			continue
		}
		e.put(p)
	}
	e.commit()
	return errors.Join(errs...)
}

// Apply implements Follower: changes made by any node. A change older than
// what memory holds (this node's own write, seen again) is skipped, so
// memory never goes back. What cannot be used is left out and reported.
func (c *Cache) Apply(changes []Change) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	var errs []error
	for _, ch := range changes {
		switch ch.Kind {
		case ClientPut:
			if rev, ok := c.Revision(ch.Client.ID); ok && rev >= ch.Client.Revision {
				continue
			}
			if err := c.put(ch.Client); err != nil {
				errs = append(errs, fmt.Errorf("client %s: %w", ch.Client.ID, err))
			}
		case ClientDeleted:
			if rev, ok := c.Revision(ch.Name); ok && rev < uint64(ch.Revision) {
				c.clients.remove(ch.Name)
			}
		case KeyPut:
			if ch.Name == secretKeyName {
				errs = append(errs, c.setSecretKey(ch.Value))
			}
		}
	}
	return errors.Join(errs...)
}

// setSecretKey switches to another secret-hashing key (a restore brought
// the key the restored clients' hashes were made with). A key that cannot
// be used leaves the current one in place.
func (c *Cache) setSecretKey(key []byte) error {
	h, err := newSecretHasher(key)
	if err != nil {
		return fmt.Errorf("secret-hashing key: %w", err)
	}
	c.secrets.Store(h)
	return nil
}

// Export implements Exporter: the clients.
func (c *Cache) Export(snap *Snapshot) {
	snap.Clients = c.List()
}

// Interface guards.
var (
	_ Follower = (*Cache)(nil)
	_ Exporter = (*Cache)(nil)
)
