package caddymodule

import (
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/gatehousehq/gatehouse/clientstore"
	"go.uber.org/zap"
)

// handleBackup streams a consistent copy of the store (bbolt's hot backup:
// one read transaction, writes go on meanwhile). The copy holds the
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
