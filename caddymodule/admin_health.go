package caddymodule

import (
	"net/http"
	"time"

	"github.com/gatehousehq/gatehouse/clientstore"
)

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
