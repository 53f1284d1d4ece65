package clientstore

// A Gatehouse backup, of either backend, is a bbolt database file in
// BoltStore's layout: BoltStore.Backup copies its own file hot, EtcdStore
// writes its snapshot with writeBoltBackup. InspectBackup and ReadBackup
// read such a file without changing it, and Restore writes a snapshot into
// any store.

import (
	"bytes"
	"context"
	"encoding/binary"
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

// writeBoltBackup streams snap as a bbolt database file, the format of
// every Gatehouse backup. The file is built in a private temporary file
// (bbolt needs a file to write pages to) and removed afterwards. Client
// revisions are kept, and the clients bucket's sequence starts above every
// one of them, so a BoltStore opened on the copy never reuses a revision.
func writeBoltBackup(snap *Snapshot, w io.Writer, begin func(size int64)) (int64, error) {
	dir, err := os.MkdirTemp("", "gatehouse-backup-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	tmp, err := OpenBolt(filepath.Join(dir, "backup.db"), 0)
	if err != nil {
		return 0, err
	}
	defer tmp.Close()
	err = tmp.db.Update(func(tx *bolt.Tx) error {
		clients := clientsForWrite(tx)
		seq := uint64(max(snap.Revision, 0))
		for _, c := range snap.Clients {
			val, err := encodeClient(c)
			if err != nil {
				return err
			}
			if err := clients.Put([]byte(c.ID), val); err != nil {
				return err
			}
			seq = max(seq, c.Revision)
		}
		if err := clients.SetSequence(seq); err != nil {
			return err
		}
		for name, v := range snap.Keys {
			if err := tx.Bucket(bucketKeys).Put([]byte(name), v); err != nil {
				return err
			}
		}
		for id, until := range snap.Revocations {
			if err := tx.Bucket(bucketRevocations).Put([]byte(id), encodeUntil(until)); err != nil {
				return err
			}
		}
		if snap.Revision > 0 {
			return tx.Bucket(bucketMeta).Put(keySnapshotRevision, binary.BigEndian.AppendUint64(nil, uint64(snap.Revision)))
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("writing the backup file: %w", err)
	}
	return tmp.Backup(w, begin)
}

// BackupInfo describes a backup file.
type BackupInfo struct {
	SchemaVersion int
	Clients       int
}

// InspectBackup opens a bbolt file read-only and checks that it is a
// Gatehouse store this version can open: its schema version, and every
// client record readable. Run it on a backup before relying on it; never
// on the file a running Caddy holds (it would wait for the lock).
func InspectBackup(path string) (BackupInfo, error) {
	var info BackupInfo
	db, err := openReadOnly(path)
	if err != nil {
		return info, err
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		if err := checkSchema(tx); err != nil {
			return err
		}
		info.SchemaVersion, _ = strconv.Atoi(string(tx.Bucket(bucketMeta).Get(keySchemaVersion)))
		return tx.Bucket(bucketClients).ForEach(func(_, val []byte) error {
			if _, err := decodeClient(val); err != nil {
				return err
			}
			info.Clients++
			return nil
		})
	})
	if err != nil {
		return info, fmt.Errorf("%s: %w", path, err)
	}
	return info, nil
}

// ReadBackup reads a Gatehouse bbolt file (a backup, or the file of a
// stopped node) without changing it. Run it on a copy, never on the file
// a running Caddy holds (it would wait for the lock).
func ReadBackup(path string) (*Snapshot, error) {
	db, err := openReadOnly(path)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	var snap *Snapshot
	err = db.View(func(tx *bolt.Tx) error {
		if err := checkSchema(tx); err != nil {
			return err
		}
		snap, err = readSnapshot(tx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return snap, nil
}

// openReadOnly opens a bbolt file without changing it (a backup, or the
// file of a stopped node); ErrLocked if a running Caddy holds it.
func openReadOnly(path string) (*bolt.DB, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("opening %s: %w", path, ErrLocked)
		}
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	return db, nil
}

// checkSchema refuses a file that is not a Gatehouse store this version
// can read.
func checkSchema(tx *bolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	if meta == nil || tx.Bucket(bucketClients) == nil || tx.Bucket(bucketKeys) == nil {
		return errors.New("not a Gatehouse store (buckets missing)")
	}
	v, err := strconv.Atoi(string(meta.Get(keySchemaVersion)))
	if err != nil {
		return errors.New("unreadable schema version")
	}
	if v > SchemaVersion {
		return fmt.Errorf("schema version %d is newer than this Gatehouse supports (%d)", v, SchemaVersion)
	}
	return nil
}

// KeyMerger combines key material a restore brings with what the target
// store already holds under the same name (key rings: keep both keys, so
// tokens of either side verify). It returns the material to store.
type KeyMerger func(name string, current, restored []byte) ([]byte, error)

// RestoreReport says what a Restore wrote.
type RestoreReport struct {
	Clients     int `json:"clients"`
	Keys        int `json:"keys"`
	Revocations int `json:"revocations"`
}

// Restore copies a snapshot (a backup, or the bbolt file of a node moving
// to a cluster; see ReadBackup) into dst, which must have no clients
// (ErrNotEmpty): clients keep their secret hashes, generations and
// creation times, so their secrets and the tokens they hold stay valid;
// revocations still in force come along; the secret-hashing key becomes
// the snapshot's (the restored hashes need it), and other keys are merged
// with dst's by merge (nil: the snapshot's replace them). Clients get new
// revisions. Followers of dst must be refreshed afterwards (Sync.Refresh),
// except through a watch, which brings the changes by itself.
func Restore(ctx context.Context, dst Store, snap *Snapshot, merge KeyMerger) (RestoreReport, error) {
	var rep RestoreReport
	empty := errors.New("not empty")
	err := dst.ForEachClient(ctx, func(*Client) error { return empty })
	switch {
	case errors.Is(err, empty):
		return rep, ErrNotEmpty
	case err != nil:
		return rep, err
	}
	for name, restored := range snap.Keys {
		if err := restoreKey(ctx, dst, name, restored, merge); err != nil {
			return rep, fmt.Errorf("restoring key %s: %w", name, err)
		}
		rep.Keys++
	}
	now := time.Now()
	for id, until := range snap.Revocations {
		if until.Before(now) {
			continue
		}
		if err := dst.Revoke(ctx, id, until); err != nil {
			return rep, err
		}
		rep.Revocations++
	}
	for _, c := range snap.Clients {
		c = c.Clone()
		if err := dst.CreateClient(ctx, c); err != nil {
			return rep, fmt.Errorf("restoring client %s: %w", c.ID, err)
		}
		rep.Clients++
	}
	return rep, nil
}

func restoreKey(ctx context.Context, dst Store, name string, restored []byte, merge KeyMerger) error {
	for attempt := 0; ; attempt++ {
		cur, err := dst.LoadOrCreateKey(ctx, name, func() ([]byte, error) { return restored, nil })
		if err != nil || bytes.Equal(cur, restored) {
			return err
		}
		next := restored
		if merge != nil && name != secretKeyName {
			if next, err = merge(name, cur, restored); err != nil {
				return err
			}
		}
		err = dst.SwapKey(ctx, name, cur, next)
		if !errors.Is(err, ErrKeyChanged) || attempt == 3 {
			return err
		}
	}
}
