package caddymodule

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/gatehousehq/gatehouse/clientstore"
	"github.com/gatehousehq/gatehouse/introspection"
	"go.uber.org/zap"
)

// handleBackup streams a consistent copy of the store as a bbolt file
// (with bbolt, its hot backup: one read transaction, writes go on
// meanwhile; with etcd, a snapshot at one revision). The copy holds the
// secret-hashing and token keys: treat it like the database itself.
func (adminAPI) handleBackup(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return methodNotAllowed(w, "GET")
	}
	app, err := runningApp()
	if err != nil {
		return err
	}
	b, ok := app.auth.Clients().Store().(clientstore.Backuper)
	if !ok {
		return apiError(http.StatusNotImplemented, "the configured storage cannot be backed up through the admin API")
	}
	name := "gatehouse-" + time.Now().UTC().Format("20060102T150405Z") + ".db"
	started := false
	n, err := b.Backup(w, func(size int64) {
		started = true
		h := w.Header()
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name}))
		h.Set("Content-Length", strconv.FormatInt(size, 10))
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusOK)
	})
	switch {
	case err != nil && !started:
		return apiError(http.StatusInternalServerError, "backup: %v", err)
	case err != nil:
		// The status line is gone; the short body (less than
		// Content-Length) tells the client the copy is incomplete.
		app.logger.Error("backup failed", zap.Int64("bytes_written", n), zap.Error(err))
		return nil
	}
	app.logger.Info("backup streamed", zap.Int64("bytes", n), zap.String("remote_addr", r.RemoteAddr))
	return nil
}

// handleRestore serves POST /gatehouse/restore: a Gatehouse backup (a
// bbolt file, from `caddy gatehouse backup` of either backend, or the
// database file of a stopped single node) is written into the running
// store, which must have no clients yet. This is how a single node moves
// to a cluster: clients keep their secrets and generations, and the key
// rings are united, so tokens minted before the move stay valid.
func (adminAPI) handleRestore(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		return methodNotAllowed(w, "POST")
	}
	app, err := runningApp()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "gatehouse-restore-")
	if err != nil {
		return apiError(http.StatusInternalServerError, "restore: %v", err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "upload.db")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
	if err != nil {
		return apiError(http.StatusInternalServerError, "restore: %v", err)
	}
	_, err = io.Copy(f, http.MaxBytesReader(w, r.Body, maxRestoreBody))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return apiError(http.StatusRequestEntityTooLarge, "restore: backup exceeds %d bytes", int64(maxRestoreBody))
		}
		return apiError(http.StatusBadRequest, "restore: reading the upload: %v", err)
	}
	snap, err := clientstore.ReadBackup(path)
	if err != nil {
		return apiError(http.StatusBadRequest, "restore: not a Gatehouse backup this version reads: %v", err)
	}
	rep, err := clientstore.Restore(r.Context(), app.state.store, snap, introspection.MergeKeyRings)
	switch {
	case errors.Is(err, clientstore.ErrNotEmpty):
		return apiError(http.StatusConflict, "restore: the store already has clients; restore into an empty store (a new etcd prefix, or a new bbolt file)")
	case errors.Is(err, clientstore.ErrUnavailable):
		return unavailable(err)
	case err != nil:
		return apiError(http.StatusInternalServerError, "restore: %v (the store may hold part of the backup)", err)
	}
	// Memory follows at once on this node (the others follow the watch).
	if err := app.state.sync.Refresh(r.Context()); err != nil {
		return apiError(http.StatusInternalServerError, "restore written, reloading it: %v", err)
	}
	app.logger.Info("backup restored", zap.Int("clients", rep.Clients), zap.Int("keys", rep.Keys),
		zap.Int("revocations", rep.Revocations), zap.String("remote_addr", r.RemoteAddr))
	return writeAdminJSON(w, http.StatusOK, rep)
}
