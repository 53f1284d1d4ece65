package clientstore

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A hot backup is a complete store: opened on its own, it has the clients,
// their secrets and the keys, as of the moment it was taken.
func TestBackupRoundTrip(t *testing.T) {
	ctx := context.Background()
	c, s, clock := newTestCache(t)
	_, secret := mustCreate(t, c, &Client{ID: "before", Scope: "read"})
	if _, _, err := c.RotateSecret(ctx, "before", time.Hour, 0); err != nil {
		t.Fatal(err)
	}

	var buf bytes.Buffer
	var announced int64 = -1
	n, err := s.Backup(&buf, func(size int64) { announced = size })
	if err != nil {
		t.Fatalf("Backup = %v", err)
	}
	if n != int64(buf.Len()) || announced != n {
		t.Fatalf("Backup wrote %d bytes, announced %d, buffer %d; want all equal", n, announced, buf.Len())
	}
	mustCreate(t, c, &Client{ID: "after"}) // not in the backup

	path := filepath.Join(t.TempDir(), "restored.db")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	info, err := InspectBackup(path)
	if err != nil || info.Clients != 1 || info.SchemaVersion != SchemaVersion {
		t.Fatalf("InspectBackup = %+v, %v; want 1 client, schema %d", info, err, SchemaVersion)
	}
	restored := openTestBolt(t, path)
	rc, err := NewCache(ctx, restored)
	if err != nil {
		t.Fatal(err)
	}
	rc.SetClock(clock.Now)
	if _, ok := rc.Authenticate("before", secret); !ok {
		t.Error("restored store does not accept the secret (in grace period) from before the backup")
	}
	if _, ok := rc.Get("after"); ok {
		t.Error("restored store has a client created after the backup")
	}

	bad := filepath.Join(t.TempDir(), "bad.db")
	if err := os.WriteFile(bad, []byte("not a database"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := InspectBackup(bad); err == nil {
		t.Error("InspectBackup of a non-database = nil error")
	}
}
