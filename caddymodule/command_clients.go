package caddymodule

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/gatehousehq/gatehouse/clientstore"
	"github.com/spf13/cobra"
)

// clientFields are the flags that set client fields, shared by create and
// update.
func clientFields(cmd *cobra.Command) {
	f := cmd.Flags()
	f.String("name", "", "client_name")
	f.String("scope", "", `Allowed scopes, space-separated ("orders:read orders:write")`)
	f.StringArray("audience", nil, "Allowed audience (repeatable)")
	f.String("owner", "", "owner")
	f.String("metadata", "", `Trusted metadata, a JSON object ('{"tier":"gold"}'); update merges it (RFC 7396, null removes a key)`)
	f.String("auth-method", "", "token_endpoint_auth_method: client_secret_basic (default), client_secret_post or private_key_jwt")
	f.String("jwks-uri", "", "jwks_uri for private_key_jwt")
	f.String("access-token-strategy", "", "opaque or jwt")
	f.Bool("introspect", false, "The client may call /oauth2/introspect")
	f.Bool("disabled", false, "The client is refused, and so is every token it holds")
}

// fieldsFromFlags returns the client fields whose flags were given.
func fieldsFromFlags(cmd *cobra.Command) (map[string]any, error) {
	f := cmd.Flags()
	out := map[string]any{}
	for flag, field := range map[string]string{
		"name": "client_name", "scope": "scope", "owner": "owner", "auth-method": "token_endpoint_auth_method",
		"jwks-uri": "jwks_uri", "access-token-strategy": "access_token_strategy",
	} {
		if f.Changed(flag) {
			v, _ := f.GetString(flag)
			out[field] = v
		}
	}
	for flag, field := range map[string]string{"introspect": "introspect", "disabled": "disabled"} {
		if f.Changed(flag) {
			v, _ := f.GetBool(flag)
			out[field] = v
		}
	}
	if f.Changed("audience") {
		v, _ := f.GetStringArray("audience")
		if v == nil {
			v = []string{}
		}
		out["audience"] = v
	}
	if f.Changed("metadata") {
		v, _ := f.GetString("metadata")
		var md json.RawMessage
		if err := json.Unmarshal([]byte(v), &md); err != nil {
			return nil, fmt.Errorf("--metadata: not JSON: %v", err)
		}
		out["metadata"] = md
	}
	return out, nil
}

func clientCreateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "create [--id ID] [--name …] [--scope \"a b\"] [--audience …] [--owner …] [--metadata '{…}']",
		Short: "Create a client; its secret is printed this once",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			body, err := fieldsFromFlags(cmd)
			if err != nil {
				return err
			}
			if id, _ := cmd.Flags().GetString("id"); id != "" {
				body["client_id"] = id
			}
			api, err := newAdminClient(cmd)
			if err != nil {
				return err
			}
			resp, b, err := api.call(http.MethodPost, adminClientsPath, jsonBody(body), nil)
			if err != nil {
				return err
			}
			if err := printClient(cmd, b, resp.Header.Get("ETag")); err != nil {
				return err
			}
			if !jsonOutput(cmd) {
				fmt.Fprintln(cmd.ErrOrStderr(), "Store the client_secret now: it is not shown again.")
			}
			return nil
		},
	}
	cmd.Flags().String("id", "", "client_id (default: a random UUID)")
	clientFields(cmd)
	return cmd
}

func clientListCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list [--owner OWNER]",
		Short: "List clients in client_id order (every page)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			api, err := newAdminClient(cmd)
			if err != nil {
				return err
			}
			size, _ := cmd.Flags().GetInt("page-size")
			q := url.Values{"page_size": {strconv.Itoa(size)}}
			if cmd.Flags().Changed("owner") {
				owner, _ := cmd.Flags().GetString("owner")
				q.Set("owner", owner)
			}
			var all []json.RawMessage
			for {
				resp, b, err := api.call(http.MethodGet, adminClientsPath+"?"+q.Encode(), nil, nil)
				if err != nil {
					return err
				}
				var page []json.RawMessage
				if err := json.Unmarshal(b, &page); err != nil {
					return fmt.Errorf("unexpected list response: %v", err)
				}
				all = append(all, page...)
				next := resp.Header.Get("X-Next-Page-Token")
				if next == "" {
					break
				}
				q.Set("page_token", next)
			}
			if all == nil {
				all = []json.RawMessage{}
			}
			if jsonOutput(cmd) {
				return printJSON(cmd, all)
			}
			w := table(cmd)
			fmt.Fprintln(w, "CLIENT_ID\tNAME\tOWNER\tSCOPE\tAUDIENCE\tAUTH_METHOD\tSTATUS\tUPDATED")
			for _, raw := range all {
				var c clientstore.Client
				if err := json.Unmarshal(raw, &c); err != nil {
					return fmt.Errorf("unexpected client in the list: %v", err)
				}
				status := "enabled"
				if c.Disabled {
					status = "disabled"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.ID, dash(c.Name), dash(c.Owner), dash(c.Scope),
					dash(strings.Join(c.Audience, ",")), c.TokenEndpointAuthMethod, status, c.UpdatedAt.Format(time.RFC3339))
			}
			return w.Flush()
		},
	}
	cmd.Flags().String("owner", "", "Only clients of this owner")
	cmd.Flags().Int("page-size", maxPageSize, "Clients fetched per request (all pages are fetched)")
	return cmd
}

func clientGetCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "get CLIENT_ID",
		Short: "Show one client (never its secret)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := newAdminClient(cmd)
			if err != nil {
				return err
			}
			resp, b, err := api.call(http.MethodGet, clientPath(args[0]), nil, nil)
			if err != nil {
				return err
			}
			return printClient(cmd, b, resp.Header.Get("ETag"))
		},
	}
}

func clientUpdateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "update CLIENT_ID [--scope …] [--metadata '{…}'] [--patch '{…}'] [--if-match ETAG]",
		Short: "Change the given fields of a client (JSON merge patch, RFC 7396)",
		Long: `Changes only the fields whose flags are given. --metadata merges into the
client's metadata (a key set to null is removed); --patch sends any merge
patch, and the field flags are applied on top of it. With --if-match the
change is made only if the client still has that ETag (see "client get").`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			patch := map[string]any{}
			if raw, _ := cmd.Flags().GetString("patch"); raw != "" {
				if err := json.Unmarshal([]byte(raw), &patch); err != nil {
					return fmt.Errorf("--patch: want a JSON object: %v", err)
				}
			}
			fields, err := fieldsFromFlags(cmd)
			if err != nil {
				return err
			}
			for k, v := range fields {
				patch[k] = v
			}
			if len(patch) == 0 {
				return errors.New("nothing to change: give field flags or --patch")
			}
			return patchAndPrint(cmd, args[0], patch)
		},
	}
	clientFields(cmd)
	cmd.Flags().String("patch", "", "A JSON merge patch (RFC 7396) to apply")
	ifMatchFlag(cmd)
	return cmd
}

func clientSwitchCmd(name string, disabled bool) *cobra.Command {
	short := "Enable a client again (tokens it held before it was disabled stay invalid)"
	if disabled {
		short = "Disable a client: it is refused, and so is every token it holds, at once"
	}
	cmd := &cobra.Command{
		Use:   name + " CLIENT_ID",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return patchAndPrint(cmd, args[0], map[string]any{"disabled": disabled})
		},
	}
	ifMatchFlag(cmd)
	return cmd
}

func patchAndPrint(cmd *cobra.Command, id string, patch map[string]any) error {
	api, err := newAdminClient(cmd)
	if err != nil {
		return err
	}
	h := ifMatchHeader(cmd)
	h.Set("Content-Type", mergePatchType)
	resp, b, err := api.call(http.MethodPatch, clientPath(id), jsonBody(patch), h)
	if err != nil {
		return err
	}
	return printClient(cmd, b, resp.Header.Get("ETag"))
}

func clientDeleteCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "delete CLIENT_ID",
		Short: "Delete a client; every token it holds stops working at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := newAdminClient(cmd)
			if err != nil {
				return err
			}
			if _, _, err := api.call(http.MethodDelete, clientPath(args[0]), nil, ifMatchHeader(cmd)); err != nil {
				return err
			}
			if jsonOutput(cmd) {
				return printJSON(cmd, map[string]any{"client_id": args[0], "deleted": true})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Deleted client %s.\n", args[0])
			return nil
		},
	}
	ifMatchFlag(cmd)
	return cmd
}

func clientRotateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rotate-secret CLIENT_ID [--grace 24h]",
		Short: "Give a client a new secret; the old one works for a grace period",
		Long: `Generates a new client secret and prints it once. The previous secret
keeps working for --grace (default 24h, at most 30 days); --grace 0s
revokes it at once together with every token the client holds.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			grace, _ := cmd.Flags().GetString("grace")
			api, err := newAdminClient(cmd)
			if err != nil {
				return err
			}
			resp, b, err := api.call(http.MethodPost, clientPath(args[0])+"/"+secretSegment,
				jsonBody(map[string]string{"grace_period": grace}), ifMatchHeader(cmd))
			if err != nil {
				return err
			}
			if err := printClient(cmd, b, resp.Header.Get("ETag")); err != nil {
				return err
			}
			if !jsonOutput(cmd) {
				if d, err := caddy.ParseDuration(grace); err == nil && d == 0 {
					fmt.Fprintln(cmd.ErrOrStderr(), "The previous secret and every token of the client are revoked.")
				} else {
					fmt.Fprintf(cmd.ErrOrStderr(), "The previous secret keeps working for %s. Store the new client_secret now: it is not shown again.\n", grace)
				}
			}
			return nil
		},
	}
	cmd.Flags().String("grace", clientstore.DefaultSecretGracePeriod.String(), "How long the previous secret keeps working (0s: revoke it and all tokens now)")
	ifMatchFlag(cmd)
	return cmd
}

func clientImportCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "import FILE|-",
		Short: "Import clients from Ory Hydra's JSON (hydra list clients --format json, or its admin API)",
		Long: `Imports clients from Ory Hydra: an array, one client, or the CLI's
{"items": [...]}. A client keeps its Hydra secret if the document carries
Hydra's hash of it as client_secret_hash (PBKDF2-SHA256 or bcrypt, from
Hydra's database); otherwise a new secret is generated and printed once.
Clients without the client_credentials grant are skipped; unknown fields
are kept in hydra_extra. Exits non-zero if any client failed.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			doc, err := readInput(cmd, args[0])
			if err != nil {
				return err
			}
			api, err := newAdminClient(cmd)
			if err != nil {
				return err
			}
			path := adminClientsPath + "/" + importSegment
			if dry, _ := cmd.Flags().GetBool("dry-run"); dry {
				path += "?dry_run=true"
			}
			_, b, err := api.call(http.MethodPost, path, bytes.NewReader(doc), nil)
			if err != nil {
				return err
			}
			var rep importResponse
			if err := json.Unmarshal(b, &rep); err != nil {
				return fmt.Errorf("unexpected import response: %v", err)
			}
			if jsonOutput(cmd) {
				if err := printRaw(cmd, b); err != nil {
					return err
				}
			} else {
				w := table(cmd)
				fmt.Fprintln(w, "#\tCLIENT_ID\tSTATUS\tDETAILS")
				for _, r := range rep.Results {
					fmt.Fprintf(w, "%d\t%s\t%s\t%s\n", r.Index, dash(r.ClientID), r.Status, importDetails(r))
				}
				if err := w.Flush(); err != nil {
					return err
				}
				verb := "Imported"
				if rep.DryRun {
					verb = "Dry run: would import"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s %d, skipped %d, failed %d.\n", verb, rep.Imported, rep.Skipped, rep.Failed)
			}
			if rep.Failed > 0 {
				return fmt.Errorf("%d of %d clients failed to import", rep.Failed, len(rep.Results))
			}
			return nil
		},
	}
	cmd.Flags().Bool("dry-run", false, "Check everything, change nothing")
	return cmd
}

func importDetails(r importResult) string {
	var parts []string
	switch {
	case r.ClientSecret != "":
		parts = append(parts, "client_secret="+r.ClientSecret+" (generated, shown once)")
	case r.SecretOrigin == "hydra_hash":
		parts = append(parts, "keeps its Hydra secret")
	}
	if r.Reason != "" {
		if r.ErrorStatus != 0 {
			parts = append(parts, fmt.Sprintf("%d: %s", r.ErrorStatus, r.Reason))
		} else {
			parts = append(parts, r.Reason)
		}
	}
	if len(r.DroppedGrantTypes) > 0 {
		parts = append(parts, "dropped grant types: "+strings.Join(r.DroppedGrantTypes, ","))
	}
	if len(r.KeptFields) > 0 {
		parts = append(parts, "kept in hydra_extra: "+strings.Join(r.KeptFields, ","))
	}
	if len(r.DroppedFields) > 0 {
		parts = append(parts, "not kept: "+strings.Join(r.DroppedFields, ","))
	}
	return dash(strings.Join(parts, "; "))
}

func clientPath(id string) string { return adminClientsPath + "/" + url.PathEscape(id) }

func jsonBody(v any) io.Reader {
	b, _ := json.Marshal(v) // maps of plain values and RawMessage: cannot fail
	return bytes.NewReader(b)
}

func ifMatchFlag(cmd *cobra.Command) {
	cmd.Flags().String("if-match", "", `Only if the client still has this ETag (from "client get"); else HTTP 412`)
}

func ifMatchHeader(cmd *cobra.Command) http.Header {
	h := http.Header{}
	if v, _ := cmd.Flags().GetString("if-match"); v != "" {
		if !strings.HasPrefix(v, `"`) && !strings.HasPrefix(v, "W/") && v != "*" {
			v = strconv.Quote(v)
		}
		h.Set("If-Match", v)
	}
	return h
}
