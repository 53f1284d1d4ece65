package caddymodule

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/gatehousehq/gatehouse/clientstore"
	"github.com/google/uuid"
	"go.uber.org/zap"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// maxAdminBody bounds an admin API request body.
const maxAdminBody = 64 << 10

const adminClientsPath = "/gatehouse/clients"

// adminAPI serves client management under /gatehouse/ on Caddy's admin
// endpoint. Bodies use Hydra's client field names.
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

// clientInput is a client as an operator sends it.
type clientInput struct {
	clientstore.Client
	// Server-generated only; refused so nobody sets a weak secret.
	ClientSecret *string `json:"client_secret,omitempty"`
	// Ignored on input: the server keeps these.
	CreatedAt *json.RawMessage `json:"created_at,omitempty"`
	UpdatedAt *json.RawMessage `json:"updated_at,omitempty"`
}

// createdClient is the create response: the only time the secret is shown.
type createdClient struct {
	*clientstore.Client
	ClientSecret string `json:"client_secret"`
}

func (adminAPI) handleClients(w http.ResponseWriter, r *http.Request) error {
	app, err := runningApp()
	if err != nil {
		return err
	}
	clients := app.auth.Clients()
	switch r.Method {
	case http.MethodGet:
		list := clients.List()
		if list == nil {
			list = []*clientstore.Client{}
		}
		return writeAdminJSON(w, http.StatusOK, list)
	case http.MethodPost:
		in, err := decodeClient(w, r)
		if err != nil {
			return err
		}
		if in.ID == "" {
			in.ID = uuid.NewString()
		}
		c, secret, err := clients.Create(r.Context(), &in.Client)
		if err != nil {
			return storeError(err, in.ID)
		}
		app.logger.Info("client created", zap.String("client_id", c.ID))
		w.Header().Set("Location", adminClientsPath+"/"+c.ID)
		w.Header().Set("Cache-Control", "no-store")
		return writeAdminJSON(w, http.StatusCreated, createdClient{Client: c, ClientSecret: secret})
	default:
		return methodNotAllowed(w, "GET, POST")
	}
}

func (adminAPI) handleClient(w http.ResponseWriter, r *http.Request) error {
	app, err := runningApp()
	if err != nil {
		return err
	}
	clients := app.auth.Clients()
	id := strings.TrimPrefix(r.URL.Path, adminClientsPath+"/")
	if err := clientstore.ValidateID(id); err != nil {
		return apiError(http.StatusNotFound, "client %q not found", id)
	}
	switch r.Method {
	case http.MethodGet:
		c, ok := clients.Get(id)
		if !ok {
			return apiError(http.StatusNotFound, "client %q not found", id)
		}
		return writeAdminJSON(w, http.StatusOK, c)
	case http.MethodPut:
		in, err := decodeClient(w, r)
		if err != nil {
			return err
		}
		if in.ID != "" && in.ID != id {
			return apiError(http.StatusBadRequest, "client_id: %q in the body differs from %q in the path", in.ID, id)
		}
		in.ID = id
		c, err := clients.Update(r.Context(), &in.Client)
		if err != nil {
			return storeError(err, id)
		}
		app.logger.Info("client updated", zap.String("client_id", id))
		return writeAdminJSON(w, http.StatusOK, c)
	case http.MethodDelete:
		if err := clients.Delete(r.Context(), id); err != nil {
			return storeError(err, id)
		}
		app.logger.Info("client deleted", zap.String("client_id", id))
		w.WriteHeader(http.StatusNoContent)
		return nil
	default:
		return methodNotAllowed(w, "GET, PUT, DELETE")
	}
}

// decodeClient reads a bounded JSON client body, refusing unknown fields so
// that a misspelt field is an error rather than silently dropped.
func decodeClient(w http.ResponseWriter, r *http.Request) (*clientInput, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxAdminBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, apiError(http.StatusRequestEntityTooLarge, "request body exceeds %d bytes", maxAdminBody)
		}
		return nil, apiError(http.StatusBadRequest, "reading request body: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var in clientInput
	if err := dec.Decode(&in); err != nil {
		return nil, apiError(http.StatusBadRequest, "invalid client JSON: %v", err)
	}
	if dec.More() {
		return nil, apiError(http.StatusBadRequest, "invalid client JSON: trailing data after the object")
	}
	if in.ClientSecret != nil {
		return nil, apiError(http.StatusBadRequest, "client_secret: secrets are generated by the server and returned once on create")
	}
	return &in, nil
}

// storeError maps store errors onto admin API statuses.
func storeError(err error, id string) error {
	var fe *clientstore.FieldError
	switch {
	case errors.As(err, &fe):
		return apiError(http.StatusBadRequest, "%s", fe.Error())
	case errors.Is(err, clientstore.ErrNotFound):
		return apiError(http.StatusNotFound, "client %q not found", id)
	case errors.Is(err, clientstore.ErrExists):
		return apiError(http.StatusConflict, "client %q already exists", id)
	}
	return apiError(http.StatusInternalServerError, "storing client %q: %v", id, err)
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
