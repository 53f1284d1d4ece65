package caddymodule

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/gatehousehq/gatehouse/clientstore"
	"github.com/google/uuid"
	"go.uber.org/zap"
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

// clientInput is a client as an operator sends it.
type clientInput struct {
	clientstore.Client
	// Server-generated only; refused so nobody sets a weak secret.
	ClientSecret *string `json:"client_secret,omitempty"`
	// Accepted by the import endpoint only.
	ClientSecretHash *string `json:"client_secret_hash,omitempty"`
	// Ignored on input: the server keeps these.
	CreatedAt *json.RawMessage `json:"created_at,omitempty"`
	UpdatedAt *json.RawMessage `json:"updated_at,omitempty"`
}

// createdClient is the create and rotate response: the only time the
// secret is shown.
type createdClient struct {
	*clientstore.Client
	ClientSecret string `json:"client_secret"`
}

// MarshalJSON writes the client's members, then client_secret (the
// embedded Client's own MarshalJSON would otherwise be the whole answer).
func (c createdClient) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(c.Client)
	if err != nil {
		return nil, err
	}
	secret, err := json.Marshal(c.ClientSecret)
	if err != nil {
		return nil, err
	}
	if len(b) < 2 || b[len(b)-1] != '}' {
		return nil, fmt.Errorf("encoding client: not an object")
	}
	b = b[:len(b)-1]
	if len(b) > 1 {
		b = append(b, ',')
	}
	b = append(b, `"client_secret":`...)
	b = append(b, secret...)
	return append(b, '}'), nil
}

func (adminAPI) handleClients(w http.ResponseWriter, r *http.Request) error {
	app, err := runningApp()
	if err != nil {
		return err
	}
	switch r.Method {
	case http.MethodGet:
		return serveList(w, r, app.auth.Clients())
	case http.MethodPost:
		return serveCreate(w, r, app)
	default:
		return methodNotAllowed(w, "GET, POST")
	}
}

func serveCreate(w http.ResponseWriter, r *http.Request, app *App) error {
	body, err := readBody(w, r, maxAdminBody)
	if err != nil {
		return err
	}
	in, err := decodeClient(body)
	if err != nil {
		return err
	}
	if in.ID == "" {
		in.ID = uuid.NewString()
	}
	c, secret, err := app.auth.Clients().Create(r.Context(), &in.Client)
	if err != nil {
		return storeError(err, in.ID)
	}
	app.logger.Info("client created", zap.String("client_id", c.ID), zap.Uint64("revision", c.Revision))
	w.Header().Set("Location", adminClientsPath+"/"+c.ID)
	return writeClientWithSecret(w, http.StatusCreated, c, secret)
}

// serveList serves one page of clients in client_id order. The body
// stays a JSON array (as before pagination); the next page is announced
// by Link: <…>; rel="next" (RFC 8288) and X-Next-Page-Token.
func serveList(w http.ResponseWriter, r *http.Request, clients *clientstore.Cache) error {
	q := r.URL.Query()
	opts := clientstore.ListOptions{Limit: defaultPageSize}
	if v := q.Get("page_size"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return apiError(http.StatusBadRequest, "page_size: must be a positive integer (at most %d)", maxPageSize)
		}
		opts.Limit = min(n, maxPageSize)
	}
	if v := q.Get("page_token"); v != "" {
		after, ok := decodePageToken(v)
		if !ok {
			return apiError(http.StatusBadRequest, "page_token: not a token this server issued")
		}
		opts.After = after
	}
	if q.Has("owner") {
		owner := q.Get("owner")
		opts.Owner = &owner
	}
	page, more, total := clients.Page(opts)
	if page == nil {
		page = []*clientstore.Client{}
	}
	h := w.Header()
	h.Set("X-Total-Count", strconv.Itoa(total))
	if more {
		token := encodePageToken(page[len(page)-1].ID)
		next := url.Values{"page_size": {strconv.Itoa(opts.Limit)}, "page_token": {token}}
		if opts.Owner != nil {
			next.Set("owner", *opts.Owner)
		}
		h.Set("Link", "<"+adminClientsPath+"?"+next.Encode()+`>; rel="next"`)
		h.Set("X-Next-Page-Token", token)
	}
	return writeAdminJSON(w, http.StatusOK, page)
}

// Page tokens are opaque to callers: a version tag and the last client_id
// of the page, base64url. Listing by key keeps pages stable while clients
// are added and removed.
const pageTokenVersion = "v1:"

func encodePageToken(lastID string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(pageTokenVersion + lastID))
}

func decodePageToken(tok string) (string, bool) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return "", false
	}
	id, ok := strings.CutPrefix(string(b), pageTokenVersion)
	if !ok || clientstore.ValidateID(id) != nil {
		return "", false
	}
	return id, true
}

func (adminAPI) handleClient(w http.ResponseWriter, r *http.Request) error {
	app, err := runningApp()
	if err != nil {
		return err
	}
	rest := strings.TrimPrefix(r.URL.Path, adminClientsPath+"/")
	id, sub, hasSub := strings.Cut(rest, "/")
	if !hasSub && id == importSegment && r.Method == http.MethodPost {
		// POST is not a method of a single client, so the import endpoint
		// cannot shadow a client whose id happens to be "import".
		return serveImport(w, r, app)
	}
	if err := clientstore.ValidateID(id); err != nil {
		return notFound(id)
	}
	switch {
	case hasSub && sub == secretSegment:
		if r.Method != http.MethodPost {
			return methodNotAllowed(w, "POST")
		}
		return serveRotate(w, r, app, id)
	case hasSub:
		return apiError(http.StatusNotFound, "no such resource: %s", r.URL.Path)
	}

	clients := app.auth.Clients()
	switch r.Method {
	case http.MethodGet:
		c, ok := clients.Get(id)
		if !ok {
			return notFound(id)
		}
		return writeClient(w, http.StatusOK, c)
	case http.MethodPut:
		body, err := readBody(w, r, maxAdminBody)
		if err != nil {
			return err
		}
		in, err := decodeClient(body)
		if err != nil {
			return err
		}
		if in.ID != "" && in.ID != id {
			return apiError(http.StatusBadRequest, "client_id: %q in the body differs from %q in the path", in.ID, id)
		}
		in.ID = id
		return modifyClient(w, r, app, id, "client replaced", func(*clientstore.Client) (*clientstore.Client, error) {
			return &in.Client, nil
		})
	case http.MethodPatch:
		if err := checkPatchType(w, r); err != nil {
			return err
		}
		patch, err := readBody(w, r, maxAdminBody)
		if err != nil {
			return err
		}
		if p := bytes.TrimSpace(patch); len(p) == 0 || p[0] != '{' {
			return apiError(http.StatusBadRequest, "merge patch: must be a JSON object of the fields to change (RFC 7396)")
		}
		return modifyClient(w, r, app, id, "client patched", func(cur *clientstore.Client) (*clientstore.Client, error) {
			return applyMergePatch(cur, patch)
		})
	case http.MethodDelete:
		ifRev, err := precondition(r, clients, id)
		if err != nil {
			return err
		}
		if err := clients.DeleteIf(r.Context(), id, ifRev); err != nil {
			return storeError(err, id)
		}
		app.logger.Info("client deleted", zap.String("client_id", id))
		w.WriteHeader(http.StatusNoContent)
		return nil
	default:
		return methodNotAllowed(w, "GET, PUT, PATCH, DELETE")
	}
}

// modifyClient runs a PUT or PATCH: If-Match is evaluated against the
// current client and enforced again by the store in the write's own
// transaction, so of two operators holding the same ETag only one wins.
func modifyClient(w http.ResponseWriter, r *http.Request, app *App, id, what string,
	edit func(cur *clientstore.Client) (*clientstore.Client, error)) error {
	clients := app.auth.Clients()
	ifRev, err := precondition(r, clients, id)
	if err != nil {
		return err
	}
	c, err := clients.Modify(r.Context(), id, ifRev, edit)
	if err != nil {
		return storeError(err, id)
	}
	app.logger.Info(what, zap.String("client_id", id), zap.Uint64("revision", c.Revision),
		zap.Bool("disabled", c.Disabled))
	return writeClient(w, http.StatusOK, c)
}

// applyMergePatch applies an RFC 7396 merge patch to the client's JSON
// form (as GET shows it) and decodes the result as strictly as a PUT body.
func applyMergePatch(cur *clientstore.Client, patch []byte) (*clientstore.Client, error) {
	doc, err := json.Marshal(cur)
	if err != nil {
		return nil, err
	}
	merged, err := clientstore.MergePatch(doc, patch)
	if err != nil {
		return nil, apiError(http.StatusBadRequest, "%v", err)
	}
	in, err := decodeClient(merged)
	if err != nil {
		return nil, err
	}
	if in.ID != cur.ID {
		return nil, apiError(http.StatusBadRequest, "client_id: cannot be changed (delete and create instead)")
	}
	return &in.Client, nil
}

// checkPatchType accepts RFC 7396's media type and, for convenience,
// plain JSON; anything else is 415 with Accept-Patch (RFC 5789 §2.2).
func checkPatchType(w http.ResponseWriter, r *http.Request) error {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err == nil && (mt == mergePatchType || mt == "application/json") {
		return nil
	}
	w.Header().Set("Accept-Patch", mergePatchType)
	return apiError(http.StatusUnsupportedMediaType, "Content-Type: PATCH takes %s (RFC 7396) or application/json", mergePatchType)
}

// serveRotate serves POST /gatehouse/clients/{id}/secret. The grace
// period comes from ?grace_period= (or ?grace=) or a JSON body
// {"grace_period": "1h"}; default 24h, 0 revokes the old secret and every
// token at once.
func serveRotate(w http.ResponseWriter, r *http.Request, app *App, id string) error {
	body, err := readBody(w, r, maxAdminBody)
	if err != nil {
		return err
	}
	grace, err := gracePeriod(r.URL.Query(), body)
	if err != nil {
		return err
	}
	clients := app.auth.Clients()
	ifRev, err := precondition(r, clients, id)
	if err != nil {
		return err
	}
	c, secret, err := clients.RotateSecret(r.Context(), id, grace, ifRev)
	if err != nil {
		return storeError(err, id)
	}
	app.logger.Info("client secret rotated", zap.String("client_id", id), zap.Duration("grace_period", grace),
		zap.Bool("tokens_revoked", grace == 0), zap.Uint64("revision", c.Revision))
	return writeClientWithSecret(w, http.StatusOK, c, secret)
}

func gracePeriod(q url.Values, body []byte) (time.Duration, error) {
	var raw string
	for _, k := range []string{"grace_period", "grace"} {
		if q.Has(k) {
			if raw != "" {
				return 0, apiError(http.StatusBadRequest, "grace_period: given twice")
			}
			raw = q.Get(k)
		}
	}
	if b := bytes.TrimSpace(body); len(b) > 0 {
		var in struct {
			GracePeriod *string `json:"grace_period"`
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil || dec.More() {
			return 0, apiError(http.StatusBadRequest, `invalid rotation body: want {"grace_period": "<duration>"}`)
		}
		if in.GracePeriod != nil {
			if raw != "" {
				return 0, apiError(http.StatusBadRequest, "grace_period: given twice")
			}
			raw = *in.GracePeriod
		}
	}
	if raw == "" {
		return clientstore.DefaultSecretGracePeriod, nil
	}
	d, err := caddy.ParseDuration(raw)
	if err != nil || d < 0 || d > clientstore.MaxSecretGracePeriod {
		return 0, apiError(http.StatusBadRequest, "grace_period: %q is not a duration between 0s and %s (e.g. 1h, 30m, 0s)",
			raw, clientstore.MaxSecretGracePeriod)
	}
	return d, nil
}

// importResult is the outcome for one client of an import.
type importResult struct {
	Index             int      `json:"index"`
	ClientID          string   `json:"client_id,omitempty"`
	Status            string   `json:"status"` // imported, would_import, skipped, error
	Reason            string   `json:"reason,omitempty"`
	ErrorStatus       int      `json:"error_status,omitempty"`
	SecretOrigin      string   `json:"secret_origin,omitempty"` // hydra_hash or generated
	ClientSecret      string   `json:"client_secret,omitempty"` // generated secrets only, shown once
	KeptFields        []string `json:"kept_fields,omitempty"`
	DroppedFields     []string `json:"dropped_fields,omitempty"`
	DroppedGrantTypes []string `json:"dropped_grant_types,omitempty"`
}

type importResponse struct {
	DryRun   bool           `json:"dry_run"`
	Imported int            `json:"imported"`
	Skipped  int            `json:"skipped"`
	Failed   int            `json:"failed"`
	Results  []importResult `json:"results"`
}

// serveImport serves POST /gatehouse/clients/import: Hydra's client JSON
// in, one result per client out. Clients are imported one by one (not all
// or nothing); an existing client_id is a 409 for that client only.
// ?dry_run=true checks everything without writing.
func serveImport(w http.ResponseWriter, r *http.Request, app *App) error {
	dryRun, err := boolParam(r.URL.Query(), "dry_run")
	if err != nil {
		return err
	}
	body, err := readBody(w, r, maxImportBody)
	if err != nil {
		return err
	}
	imps, err := clientstore.ParseHydraClients(body)
	if err != nil {
		return apiError(http.StatusBadRequest, "import: %v", err)
	}
	clients := app.auth.Clients()
	resp := importResponse{DryRun: dryRun, Results: make([]importResult, 0, len(imps))}
	for _, imp := range imps {
		res := importResult{
			Index: imp.Index, ClientID: imp.ClientID, KeptFields: imp.KeptFields,
			DroppedFields: imp.DroppedFields, DroppedGrantTypes: imp.DroppedGrantTypes,
		}
		switch {
		case imp.Err != nil:
			res.Status, res.ErrorStatus, res.Reason = "error", http.StatusBadRequest, imp.Err.Error()
		case imp.Skip != "":
			res.Status, res.Reason = "skipped", imp.Skip
		case dryRun:
			if _, exists := clients.Get(imp.Client.ID); exists {
				res.Status, res.ErrorStatus, res.Reason = "error", http.StatusConflict, fmt.Sprintf("client %q already exists", imp.Client.ID)
			} else {
				res.Status = "would_import"
			}
		default:
			c, secret, err := clients.Import(r.Context(), imp.Client, imp.SecretHash)
			if err != nil {
				res.Status = "error"
				res.ErrorStatus, res.Reason = apiErrorParts(storeError(err, imp.Client.ID))
				break
			}
			res.Status, res.ClientSecret, res.SecretOrigin = "imported", secret, "generated"
			if imp.SecretHash != "" {
				res.SecretOrigin = "hydra_hash"
			}
			app.logger.Info("client imported", zap.String("client_id", c.ID), zap.String("secret_origin", res.SecretOrigin),
				zap.Strings("kept_fields", imp.KeptFields), zap.Strings("dropped_grant_types", imp.DroppedGrantTypes))
		}
		switch res.Status {
		case "imported", "would_import":
			resp.Imported++
		case "skipped":
			resp.Skipped++
		default:
			resp.Failed++
		}
		resp.Results = append(resp.Results, res)
	}
	app.logger.Info("import finished", zap.Bool("dry_run", dryRun), zap.Int("imported", resp.Imported),
		zap.Int("skipped", resp.Skipped), zap.Int("failed", resp.Failed))
	w.Header().Set("Cache-Control", "no-store")
	return writeAdminJSON(w, http.StatusOK, resp)
}

func boolParam(q url.Values, name string) (bool, error) {
	if !q.Has(name) {
		return false, nil
	}
	v := q.Get(name)
	if v == "" {
		return true, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, apiError(http.StatusBadRequest, "%s: must be true or false", name)
	}
	return b, nil
}

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

// precondition evaluates If-Match (RFC 7232 §3.1) against the client's
// current ETag: 0 if the header is absent or "*" (the client must exist,
// which the write checks anyway), else the revision the write must find,
// or 412. A missing client is a 404 before any precondition (RFC 7232 §5).
func precondition(r *http.Request, clients *clientstore.Cache, id string) (uint64, error) {
	values := r.Header.Values("If-Match")
	if len(values) == 0 {
		return 0, nil
	}
	cur, ok := clients.Get(id)
	if !ok {
		return 0, notFound(id)
	}
	tags, star, err := parseIfMatch(values)
	if err != nil {
		return 0, err
	}
	if star {
		return 0, nil
	}
	want := etag(cur)
	for _, t := range tags {
		if t == want {
			return cur.Revision, nil
		}
	}
	return 0, apiError(http.StatusPreconditionFailed, "client %q has changed: If-Match does not match its current ETag", id)
}

// parseIfMatch reads If-Match = "*" / 1#entity-tag (RFC 7232 §3.1, §2.3).
// Weak tags never match under the strong comparison If-Match requires, so
// they are dropped (but are well-formed).
func parseIfMatch(values []string) (strong []string, star bool, err error) {
	seen := false
	for _, v := range values {
		for _, e := range strings.Split(v, ",") {
			e = strings.TrimSpace(e)
			if e == "" {
				continue
			}
			seen = true
			if e == "*" {
				star = true
				continue
			}
			weak := strings.HasPrefix(e, "W/")
			e = strings.TrimPrefix(e, "W/")
			if len(e) < 2 || e[0] != '"' || e[len(e)-1] != '"' || strings.Contains(e[1:len(e)-1], `"`) {
				seen = false
				break
			}
			if !weak {
				strong = append(strong, e)
			}
		}
		if !seen {
			break
		}
	}
	if !seen {
		return nil, false, apiError(http.StatusBadRequest, `If-Match: want "*" or a list of entity tags such as "42"`)
	}
	return strong, star, nil
}

// etag is the strong entity tag of a client: its store revision, which
// changes with every write (and only then).
func etag(c *clientstore.Client) string {
	return `"` + strconv.FormatUint(c.Revision, 10) + `"`
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

// decodeClient decodes a JSON client body, refusing unknown fields so that
// a misspelt field is an error rather than silently dropped.
func decodeClient(body []byte) (*clientInput, error) {
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
		return nil, apiError(http.StatusBadRequest, "client_secret: secrets are generated by the server and returned once on create and rotation")
	}
	if in.ClientSecretHash != nil {
		return nil, apiError(http.StatusBadRequest, "client_secret_hash: accepted only by POST %s/%s (migration from Hydra)", adminClientsPath, importSegment)
	}
	if err := clientstore.CheckPublicJWKS(in.JWKS); err != nil {
		return nil, apiError(http.StatusBadRequest, "%v", err)
	}
	return &in, nil
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

// writeClient answers with one client and its ETag.
func writeClient(w http.ResponseWriter, status int, c *clientstore.Client) error {
	w.Header().Set("ETag", etag(c))
	return writeAdminJSON(w, status, c)
}

// writeClientWithSecret answers with a client and its new secret, shown
// this once: never stored by caches.
func writeClientWithSecret(w http.ResponseWriter, status int, c *clientstore.Client, secret string) error {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("ETag", etag(c))
	return writeAdminJSON(w, status, createdClient{Client: c, ClientSecret: secret})
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
