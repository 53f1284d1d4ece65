package caddymodule

import (
	"errors"
	"net/http"
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
