package clientstore

// A node on etcd keeps the last consistent view it had in a local file, so
// that it can start, and serve, while etcd is unreachable: the clients,
// keys and revocations at one store revision, in the backup format (a bbolt
// file) with that revision recorded, replaced atomically, readable and
// writable by this process's user only. It holds key material (the
// secret-hashing, token-sealing and signing keys): protect it as the
// backups.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// keySnapshotRevision records, in the meta bucket of a file written from
// a store with revisions, the revision its contents reflect.
var keySnapshotRevision = []byte("snapshot_revision")

// WriteSnapshotFile replaces the file at path with snap: a reader, or a
// crash meanwhile, finds the old file or the new one, whole.
func WriteSnapshotFile(path string, snap *Snapshot) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, filepath.Base(path)+".*.tmp") // mode 0600
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // after the rename, nothing to remove
	_, err = writeBoltBackup(snap, f, nil)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("writing the local snapshot %s: %w", path, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ReadSnapshotFile reads a file WriteSnapshotFile wrote, with the time it
// was written: the view is as of then.
func ReadSnapshotFile(path string) (*Snapshot, time.Time, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, time.Time{}, err
	}
	db, err := openReadOnly(path)
	if err != nil {
		return nil, time.Time{}, err
	}
	defer db.Close()
	var snap *Snapshot
	err = db.View(func(tx *bolt.Tx) error {
		if err := checkSchema(tx); err != nil {
			return err
		}
		if snap, err = readSnapshot(tx); err != nil {
			return err
		}
		v := tx.Bucket(bucketMeta).Get(keySnapshotRevision)
		if len(v) != 8 {
			return errors.New("no store revision recorded: not a local snapshot")
		}
		snap.Revision = int64(binary.BigEndian.Uint64(v))
		return nil
	})
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("%s: %w", path, err)
	}
	return snap, st.ModTime(), nil
}

// FromSnapshot is an EtcdStore whose first reads come from snap, the local
// snapshot, so that a node starts while etcd is unreachable: the clients,
// keys and revocations a cache, a sealer and revocations load. Everything
// else (writes, Snapshot, Watch, Backup) is the store's own.
func FromSnapshot(s *EtcdStore, snap *Snapshot) Store {
	return &fromSnapshot{EtcdStore: s, snap: snap}
}

type fromSnapshot struct {
	*EtcdStore
	snap *Snapshot
}

// ForEachClient implements Store from the snapshot.
func (s *fromSnapshot) ForEachClient(_ context.Context, fn func(*Client) error) error {
	for _, c := range s.snap.Clients {
		if err := fn(c.Clone()); err != nil {
			return err
		}
	}
	return nil
}

// LoadOrCreateKey implements Store: the snapshot's key if it has one (a
// rotation since then reaches the key's followers through the watch), else
// the store's.
func (s *fromSnapshot) LoadOrCreateKey(ctx context.Context, name string, create func() ([]byte, error)) ([]byte, error) {
	if v, ok := s.snap.Keys[name]; ok {
		return append([]byte(nil), v...), nil
	}
	return s.EtcdStore.LoadOrCreateKey(ctx, name, create)
}

// ForEachRevocation implements Store from the snapshot.
func (s *fromSnapshot) ForEachRevocation(_ context.Context, fn func(string, time.Time) error) error {
	for id, until := range s.snap.Revocations {
		if err := fn(id, until); err != nil {
			return err
		}
	}
	return nil
}
