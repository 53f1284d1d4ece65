package caddymodule

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/gatehousehq/gatehouse/clientstore"
	"go.uber.org/zap"
)

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
