package caddymodule

import (
	"errors"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehousehq/gatehouse/clientstore"
	"github.com/gatehousehq/gatehouse/clientstore/etcdtest"
)

// A node restarts while etcd is down, from the local snapshot the node
// kept: its clients authenticate, tokens issued before keep working,
// admin writes get 503, the health check says the view is stale (once
// older than the stale threshold, like a node that lost etcd); once
// etcd is back the node catches up and writes work again. Without the
// snapshot the same start is refused.
func TestNodeStartsWithEtcdDown(t *testing.T) {
	srv := etcdtest.Start(t)
	snapshot := filepath.Join(t.TempDir(), "gatehouse-etcd.snapshot")
	storage := func(snapshot string) []string {
		lines := etcdStorage(srv.Endpoint, "/offline/")
		return slices.Insert(lines, len(lines)-1, "\tsnapshot "+snapshot)
	}
	a := startCaddyNode(t, "A", storage(snapshot)...)
	c := a.create(clusterClient)
	tok := a.mustToken(c)
	within(t, etcdtest.Propagation+2*snapshotInterval, "A's local snapshot has the client", func() bool {
		snap, _, err := clientstore.ReadSnapshotFile(snapshot)
		return err == nil && slices.ContainsFunc(snap.Clients, func(cl *clientstore.Client) bool { return cl.ID == c.ClientID })
	})
	a.stop()
	srv.Stop()

	b := startCaddyNodeReady(t, "B", "/config/", storage(snapshot)...)
	if status, _ := b.token(c); status != http.StatusOK {
		t.Errorf("token from the node started from its snapshot: %d, want 200", status)
	}
	if status := b.api(tok); status != http.StatusOK {
		t.Errorf("a token issued before, on the node started from its snapshot: %d, want 200", status)
	}
	if status, _, _ := b.adminCall(http.MethodPost, adminClientsPath, `{}`, nil); status != http.StatusServiceUnavailable {
		t.Errorf("admin write with etcd down: %d, want 503", status)
	}
	within(t, etcdtest.Propagation, "B reports its view stale (the snapshot's age)", func() bool {
		status, _ := b.health()
		return status == http.StatusServiceUnavailable
	})

	srv.Restart()
	within(t, 30*time.Second, "B healthy once etcd is back", func() bool { status, _ := b.health(); return status == http.StatusOK })
	within(t, etcdtest.Propagation, "admin writes work again", func() bool {
		status, _, _ := b.adminCall(http.MethodPost, adminClientsPath, `{}`, nil)
		return status == http.StatusCreated
	})
}

// Without a local snapshot, a node whose etcd cannot be reached refuses to
// start, and says why.
func TestNodeWithoutSnapshotRefusesToStartWithEtcdDown(t *testing.T) {
	srv := etcdtest.Start(t)
	srv.Stop()
	store, err := clientstore.NewEtcd(clientstore.EtcdConfig{Endpoints: []string{srv.Endpoint}, Prefix: "/nosnap/",
		DialTimeout: time.Second, RequestTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	_, err = openEtcdState(t.Context(), store, filepath.Join(t.TempDir(), "none.snapshot"), nil)
	if !errors.Is(err, clientstore.ErrUnavailable) || !strings.Contains(err.Error(), "no local snapshot") {
		t.Fatalf("start with etcd down and no snapshot = %v, want ErrUnavailable saying there is no local snapshot", err)
	}
}
