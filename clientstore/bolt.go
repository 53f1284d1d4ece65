package clientstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// SchemaVersion is the layout of the bbolt file this code writes. It is
// recorded in the file so that a later version can migrate it, and so that
// this version refuses a file written by a newer one instead of misreading it.
const SchemaVersion = 1

var (
	bucketMeta        = []byte("meta")
	bucketClients     = []byte("clients")
	bucketKeys        = []byte("keys")
	bucketRevocations = []byte("revocations")

	keySchemaVersion = []byte("schema_version")
)

// DefaultLockTimeout bounds how long OpenBolt waits for bbolt's exclusive
// file lock before it reports that another process holds the file.
const DefaultLockTimeout = 3 * time.Second

// BoltStore is the embedded bbolt implementation of Store: one file, one
// process. bbolt fsyncs on every commit, so an acknowledged write survives
// a crash.
type BoltStore struct {
	db          *bolt.DB
	path        string
	lockTimeout time.Duration
}

// OpenBolt opens (creating if needed) the bbolt file at path. If another
// process holds the file, it fails with an error wrapping ErrLocked after
// lockTimeout (DefaultLockTimeout if zero).
func OpenBolt(path string, lockTimeout time.Duration) (*BoltStore, error) {
	if lockTimeout <= 0 {
		lockTimeout = DefaultLockTimeout
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("creating directory for %s: %w", path, err)
	}
	s := &BoltStore{path: path, lockTimeout: lockTimeout}
	if err := s.open(); err != nil {
		return nil, err
	}
	if err := s.init(); err != nil {
		s.db.Close()
		return nil, err
	}
	return s, nil
}

func (s *BoltStore) open() error {
	db, err := bolt.Open(s.path, 0o600, &bolt.Options{Timeout: s.lockTimeout})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return fmt.Errorf("opening %s: %w (is another Caddy using it?)", s.path, ErrLocked)
		}
		return fmt.Errorf("opening %s: %w", s.path, err)
	}
	s.db = db
	return nil
}

// Reopen closes the file and opens it again. bbolt reads through a memory
// map of the file, and a full read (loading every client at startup)
// leaves every page of it in the process's resident set, as much memory
// again as the file, though nothing reads them until the next full read;
// a new map starts with none (the kernel keeps them in its page cache).
// Call it only while nothing else uses the store. If it fails, the store
// is closed.
func (s *BoltStore) Reopen() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", s.path, err)
	}
	return s.open()
}

// init creates the buckets and records or checks the schema version.
func (s *BoltStore) init() error {
	return s.db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMeta, bucketClients, bucketKeys, bucketRevocations} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		v := meta.Get(keySchemaVersion)
		if v == nil {
			return meta.Put(keySchemaVersion, []byte(strconv.Itoa(SchemaVersion)))
		}
		got, err := strconv.Atoi(string(v))
		if err != nil {
			return fmt.Errorf("%s: unreadable schema version %q", s.path, v)
		}
		if got > SchemaVersion {
			return fmt.Errorf("%s: schema version %d is newer than this Gatehouse supports (%d)", s.path, got, SchemaVersion)
		}
		return assignRevisions(clientsForWrite(tx))
	})
}

// clientsFillPercent is how full bbolt packs the clients bucket's pages
// when it splits them. bbolt's default (half) suits random inserts into
// small records; clients are few hundred bytes, written one per
// transaction, and mostly read: packed pages keep the file and the pages a
// full load touches about half as many.
const clientsFillPercent = 0.9

// clientsForWrite is the clients bucket of a write transaction.
func clientsForWrite(tx *bolt.Tx) *bolt.Bucket {
	b := tx.Bucket(bucketClients)
	b.FillPercent = clientsFillPercent
	return b
}

// assignRevisions gives a revision to every client record written before
// records had one (or by an older Gatehouse after a downgrade), so that
// every stored client has a distinct, non-zero revision. The format stays
// readable by older versions, which ignore the field.
func assignRevisions(b *bolt.Bucket) error {
	var missing [][]byte
	err := b.ForEach(func(k, v []byte) error {
		if rev, err := storedRevision(v); err == nil && rev == 0 {
			missing = append(missing, bytes.Clone(k))
		}
		return nil // an unreadable record fails later, when it is loaded
	})
	if err != nil {
		return err
	}
	// Put after the walk: bbolt forbids changing a bucket inside ForEach.
	for _, k := range missing {
		c, err := decodeClient(b.Get(k))
		if err != nil {
			return err
		}
		if c.Revision, err = b.NextSequence(); err != nil {
			return err
		}
		val, err := encodeClient(c)
		if err != nil {
			return err
		}
		if err := b.Put(k, val); err != nil {
			return err
		}
	}
	return nil
}

// Path is the file the store lives in.
func (s *BoltStore) Path() string { return s.path }

// Close closes the file and releases its lock.
func (s *BoltStore) Close() error { return s.db.Close() }

// putClient writes c in one transaction: the existence and revision checks
// and the write cannot be separated by another writer. The new revision
// comes from the clients bucket's sequence, so it is never reused.
func (s *BoltStore) putClient(c *Client, mustExist bool, rev uint64) error {
	var next uint64
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := clientsForWrite(tx)
		old := b.Get([]byte(c.ID))
		switch {
		case mustExist && old == nil:
			return ErrNotFound
		case !mustExist && old != nil:
			return ErrExists
		}
		if err := checkRevision(old, rev); err != nil {
			return err
		}
		var err error
		if next, err = b.NextSequence(); err != nil {
			return err
		}
		stored := *c
		stored.Revision = next
		val, err := encodeClient(&stored)
		if err != nil {
			return err
		}
		return b.Put([]byte(c.ID), val)
	})
	if err == nil {
		c.Revision = next
	}
	return err
}

// CreateClient implements Store.
func (s *BoltStore) CreateClient(_ context.Context, c *Client) error {
	return s.putClient(c, false, 0)
}

// UpdateClient implements Store.
func (s *BoltStore) UpdateClient(_ context.Context, c *Client) error {
	return s.putClient(c, true, 0)
}

// UpdateClientIf implements Store.
func (s *BoltStore) UpdateClientIf(_ context.Context, c *Client, rev uint64) error {
	return s.putClient(c, true, rev)
}

// DeleteClient implements Store.
func (s *BoltStore) DeleteClient(ctx context.Context, id string) error {
	return s.DeleteClientIf(ctx, id, 0)
}

// DeleteClientIf implements Store.
func (s *BoltStore) DeleteClientIf(_ context.Context, id string, rev uint64) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketClients)
		old := b.Get([]byte(id))
		if old == nil {
			return ErrNotFound
		}
		if err := checkRevision(old, rev); err != nil {
			return err
		}
		return b.Delete([]byte(id))
	})
}

// GetClient implements Store.
func (s *BoltStore) GetClient(_ context.Context, id string) (*Client, error) {
	var c *Client
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketClients).Get([]byte(id))
		if v == nil {
			return ErrNotFound
		}
		var err error
		c, err = decodeClient(v)
		return err
	})
	return c, err
}

// ForEachClient implements Store.
func (s *BoltStore) ForEachClient(_ context.Context, fn func(*Client) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketClients).ForEach(func(_, v []byte) error {
			c, err := decodeClient(v)
			if err != nil {
				return err
			}
			return fn(c)
		})
	})
}

// LoadOrCreateKey implements Store.
func (s *BoltStore) LoadOrCreateKey(_ context.Context, name string, create func() ([]byte, error)) ([]byte, error) {
	var out []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketKeys).Get([]byte(name)); v != nil {
			out = bytes.Clone(v)
		}
		return nil
	})
	if err != nil || out != nil {
		return out, err
	}
	fresh, err := create()
	if err != nil {
		return nil, fmt.Errorf("creating key %s: %w", name, err)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketKeys)
		if v := b.Get([]byte(name)); v != nil { // created meanwhile: keep the first
			out = bytes.Clone(v)
			return nil
		}
		out = fresh
		return b.Put([]byte(name), fresh)
	})
	return out, err
}

// SwapKey implements Store.
func (s *BoltStore) SwapKey(_ context.Context, name string, old, next []byte) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketKeys)
		cur := b.Get([]byte(name))
		if (cur == nil) != (old == nil) || !bytes.Equal(cur, old) {
			return ErrKeyChanged
		}
		return b.Put([]byte(name), next)
	})
}

// Snapshot implements Snapshotter: one read transaction sees one state.
func (s *BoltStore) Snapshot(context.Context) (*Snapshot, error) {
	var snap *Snapshot
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		snap, err = readSnapshot(tx)
		return err
	})
	return snap, err
}

// readSnapshot reads a whole Gatehouse store inside one transaction.
func readSnapshot(tx *bolt.Tx) (*Snapshot, error) {
	clients, keys, revs := tx.Bucket(bucketClients), tx.Bucket(bucketKeys), tx.Bucket(bucketRevocations)
	if clients == nil || keys == nil || revs == nil {
		return nil, errors.New("not a Gatehouse store (buckets missing)")
	}
	snap := &Snapshot{Keys: map[string][]byte{}, Revocations: map[string]time.Time{}}
	err := clients.ForEach(func(_, v []byte) error {
		c, err := decodeClient(v)
		if err == nil {
			snap.Clients = append(snap.Clients, c)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := keys.ForEach(func(k, v []byte) error {
		snap.Keys[string(k)] = bytes.Clone(v)
		return nil
	}); err != nil {
		return nil, err
	}
	err = revs.ForEach(func(k, v []byte) error {
		if until, ok := decodeUntil(v); ok {
			snap.Revocations[string(k)] = until
		}
		return nil
	})
	return snap, err
}

// Revoke implements Store.
func (s *BoltStore) Revoke(_ context.Context, tokenID string, until time.Time) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRevocations).Put([]byte(tokenID), encodeUntil(until))
	})
}

// RecordOnce implements OnceRecorder: check and write in one transaction.
func (s *BoltStore) RecordOnce(_ context.Context, id string, until, now time.Time) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRevocations)
		if old, ok := decodeUntil(b.Get([]byte(id))); ok && !old.Before(now) {
			return ErrUsed
		}
		return b.Put([]byte(id), encodeUntil(until))
	})
}

// ForEachRevocation implements Store.
func (s *BoltStore) ForEachRevocation(_ context.Context, fn func(string, time.Time) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRevocations).ForEach(func(k, v []byte) error {
			until, ok := decodeUntil(v)
			if !ok {
				return nil // not ours; ignore rather than fail startup
			}
			return fn(string(k), until)
		})
	})
}

// PruneRevocations implements Store.
func (s *BoltStore) PruneRevocations(_ context.Context, now time.Time) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRevocations)
		// Collect first: deleting under a moving cursor skips keys.
		var expired [][]byte
		err := b.ForEach(func(k, v []byte) error {
			if until, ok := decodeUntil(v); ok && until.Unix() < now.Unix() {
				expired = append(expired, bytes.Clone(k))
			}
			return nil
		})
		for _, k := range expired {
			if err == nil {
				err = b.Delete(k)
			}
		}
		return err
	})
}

// Backup implements Backuper with bbolt's hot backup: a read transaction
// sees one consistent state of the file and streams it while writers go
// on. The copy is a complete bbolt file, keys included.
func (s *BoltStore) Backup(w io.Writer, begin func(size int64)) (int64, error) {
	var n int64
	err := s.db.View(func(tx *bolt.Tx) error {
		if begin != nil {
			begin(tx.Size())
		}
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	return n, err
}

// Interface guards.
var (
	_ Store        = (*BoltStore)(nil)
	_ Backuper     = (*BoltStore)(nil)
	_ Snapshotter  = (*BoltStore)(nil)
	_ OnceRecorder = (*BoltStore)(nil)
)
