package caddymodule

import (
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/gatehousehq/gatehouse/clientstore"
	"github.com/gatehousehq/gatehouse/introspection"
	"go.uber.org/zap"
)

// handleRotateKeys serves POST /gatehouse/keys/rotate: a new token-sealing
// key and a new identity-signing key, for every node sharing the store.
// Replaced keys stay in the rings (tokens and JWTs made with them keep
// verifying, the JWKS keeps publishing them) until a later rotation finds
// them replaced for longer than the token and identity-JWT lifetimes.
func (adminAPI) handleRotateKeys(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		return methodNotAllowed(w, "POST")
	}
	app, err := runningApp()
	if err != nil {
		return err
	}
	cfg := app.auth.Config()
	retain := max(cfg.TokenTTL, cfg.IdentityTTL)
	rot, err := introspection.RotateKeys(r.Context(), app.state.store, app.state.sealer, app.auth.Signer(), retain, time.Now())
	if err != nil {
		if errors.Is(err, clientstore.ErrUnavailable) {
			return unavailable(err)
		}
		return apiError(http.StatusInternalServerError, "%v", err)
	}
	app.logger.Info("keys rotated", zap.Uint32("token_sealing_key_id", rot.SealingKeyID),
		zap.String("signing_kid", rot.SigningKeyID), zap.Strings("jwks_kids", rot.SigningKeyIDs))
	return writeAdminJSON(w, http.StatusOK, rot)
}

// healthReport is GET /gatehouse/health.
type healthReport struct {
	// Status is "ok", or "stale" when the store has not confirmed this
	// node's view for longer than the stale threshold (etcd unreachable:
	// the node serves from memory, writes fail).
	Status      string     `json:"status"`
	Backend     string     `json:"backend"`
	Path        string     `json:"path,omitempty"`
	Endpoints   []string   `json:"endpoints,omitempty"`
	Prefix      string     `json:"prefix,omitempty"`
	Watching    bool       `json:"watching"`
	Revision    int64      `json:"revision,omitempty"`
	LastSync    *time.Time `json:"last_sync,omitempty"`
	AgeSeconds  float64    `json:"age_seconds"`
	Resyncs     int64      `json:"resyncs"`
	LastError   string     `json:"last_error,omitempty"`
	LastErrorAt *time.Time `json:"last_error_at,omitempty"`
	Clients     int        `json:"clients"`
}

// handleHealth reports how current this node's view of the store is:
// 200 when current, 503 (same body) when stale, so monitors can use it.
func (adminAPI) handleHealth(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return methodNotAllowed(w, "GET, HEAD")
	}
	app, err := runningApp()
	if err != nil {
		return err
	}
	now := time.Now()
	st := app.state.sync.Status()
	rep := healthReport{
		Status: "ok", Backend: "bolt", Watching: st.Watching, Revision: st.Revision,
		AgeSeconds: st.Age(now).Seconds(), Resyncs: st.Resyncs, LastError: st.LastError,
		Clients: app.auth.Clients().Len(),
	}
	switch s := app.state.store.(type) {
	case *clientstore.BoltStore:
		rep.Path = s.Path()
	case *clientstore.EtcdStore:
		rep.Backend, rep.Endpoints, rep.Prefix = "etcd", s.Endpoints(), s.Prefix()
	}
	if !st.LastSync.IsZero() && st.Watching {
		rep.LastSync = &st.LastSync
	}
	if !st.LastErrorAt.IsZero() {
		rep.LastErrorAt = &st.LastErrorAt
	}
	status := http.StatusOK
	if st.Age(now) > clientstore.DefaultStaleAfter {
		rep.Status, status = "stale", http.StatusServiceUnavailable
	}
	w.Header().Set("Cache-Control", "no-store")
	return writeAdminJSON(w, status, rep)
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
