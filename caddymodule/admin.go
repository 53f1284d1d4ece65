package caddymodule

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/gatehousehq/gatehouse/clientstore"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// Admin API limits.
const (
	// maxAdminBody bounds a client (or merge patch, or rotation) body.
	maxAdminBody = 64 << 10
	// maxImportBody bounds an import document: thousands of Hydra clients.
	maxImportBody = 8 << 20
	// defaultPageSize and maxPageSize bound a page of the client list
	// (Hydra's admin API pages the same way).
	defaultPageSize = 250
	maxPageSize     = 1000
	// maxRestoreBody bounds an uploaded backup.
	maxRestoreBody = 1 << 30
)

const (
	adminClientsPath = "/gatehouse/clients"
	adminBackupPath  = "/gatehouse/backup"
	adminRestorePath = "/gatehouse/restore"
	adminRotatePath  = "/gatehouse/keys/rotate"
	adminHealthPath  = "/gatehouse/health"
	importSegment    = "import"
	secretSegment    = "secret"
	mergePatchType   = "application/merge-patch+json"
)

// adminAPI is Gatehouse's admin API, under /gatehouse/ on Caddy's admin
// endpoint: client management and import, backup and restore, key
// rotation and health (see Routes). Client bodies use Hydra's client field
// names.
type adminAPI struct{}

// CaddyModule returns the Caddy module information.
func (adminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.gatehouse",
		New: func() caddy.Module { return new(adminAPI) },
	}
}

// Routes returns the admin routes.
func (a adminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{
		{Pattern: adminClientsPath, Handler: caddy.AdminHandlerFunc(a.handleClients)},
		{Pattern: adminClientsPath + "/", Handler: caddy.AdminHandlerFunc(a.handleClient)},
		{Pattern: adminBackupPath, Handler: caddy.AdminHandlerFunc(a.handleBackup)},
		{Pattern: adminRestorePath, Handler: caddy.AdminHandlerFunc(a.handleRestore)},
		{Pattern: adminRotatePath, Handler: caddy.AdminHandlerFunc(a.handleRotateKeys)},
		{Pattern: adminHealthPath, Handler: caddy.AdminHandlerFunc(a.handleHealth)},
	}
}

// runningApp is the gatehouse app of the running configuration.
func runningApp() (*App, error) {
	app, err := caddy.ActiveContext().AppIfConfigured("gatehouse")
	if err != nil {
		return nil, apiError(http.StatusServiceUnavailable, "gatehouse is not part of the running configuration")
	}
	return app.(*App), nil
}

func apiError(status int, format string, args ...any) error {
	return caddy.APIError{HTTPStatus: status, Err: fmt.Errorf(format, args...)}
}

// readBody reads a bounded request body: 413 beyond limit.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, apiError(http.StatusRequestEntityTooLarge, "request body exceeds %d bytes", limit)
		}
		return nil, apiError(http.StatusBadRequest, "reading request body: %v", err)
	}
	return body, nil
}

// storeError maps store errors onto admin API statuses. Errors that
// already carry a status pass through, completed by apiErrorParts' rules
// where they lack a status or a message.
func storeError(err error, id string) error {
	var fe *clientstore.FieldError
	var ae caddy.APIError
	switch {
	case errors.As(err, &ae):
		var msg string
		ae.HTTPStatus, msg = apiErrorParts(ae)
		if ae.Err == nil {
			ae.Err = errors.New(msg)
		}
		return ae
	case errors.As(err, &fe):
		return apiError(http.StatusBadRequest, "%s", fe.Error())
	case errors.Is(err, clientstore.ErrNotFound):
		return notFound(id)
	case errors.Is(err, clientstore.ErrExists):
		return apiError(http.StatusConflict, "client %q already exists", id)
	case errors.Is(err, clientstore.ErrRevisionMismatch):
		return apiError(http.StatusPreconditionFailed, "client %q has changed since the ETag given in If-Match", id)
	case errors.Is(err, clientstore.ErrUnavailable):
		return unavailable(err)
	}
	return apiError(http.StatusInternalServerError, "storing client %q: %v", id, err)
}

// apiErrorParts is the status and message err is answered with, as
// Caddy's admin endpoint answers it: a caddy.APIError's status, else 500;
// its Err's text, else its Message, else the status text.
func apiErrorParts(err error) (int, string) {
	status, msg := http.StatusInternalServerError, ""
	if ae := (caddy.APIError{}); errors.As(err, &ae) {
		if ae.HTTPStatus != 0 {
			status = ae.HTTPStatus
		}
		msg = ae.Error()
	} else if err != nil {
		msg = err.Error()
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	return status, msg
}

// unavailable is the answer to a write while the store cannot be reached:
// the node keeps serving from memory, but nothing can change until the
// store is back.
func unavailable(err error) error {
	return apiError(http.StatusServiceUnavailable,
		"gatehouse storage is unavailable, the change was not confirmed (retry when it is back; GET %s shows the node's view): %v",
		adminHealthPath, err)
}

func notFound(id string) error {
	return apiError(http.StatusNotFound, "client %q not found", id)
}

func methodNotAllowed(w http.ResponseWriter, allow string) error {
	w.Header().Set("Allow", allow)
	return apiError(http.StatusMethodNotAllowed, "method not allowed")
}

func writeAdminJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return apiError(http.StatusInternalServerError, "encoding response: %v", err)
	}
	writeJSONBytes(w, status, b)
	return nil
}

// Interface guard.
var _ caddy.AdminRouter = (*adminAPI)(nil)
