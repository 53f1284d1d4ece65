package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/gatehousehq/gatehouse/clientstore"
	"github.com/spf13/cobra"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "gatehouse",
		Usage: "client|keys|backup|restore|health|token|introspect ...",
		Short: "Manages Gatehouse OAuth clients through the running Caddy's admin API",
		Long: `
Manages the OAuth clients of a running Gatehouse through Caddy's admin API,
the way the caddy command manages the rest of Caddy. It never opens the
bbolt file the server holds.

The admin address is --admin, else the admin address of --config (and
--adapter), else CADDY_ADMIN, else localhost:2019 — as for caddy reload.
Output is a table for humans; --json prints the server's JSON for
scripts. On failure the exit status is non-zero and the server's message
is printed.

Secrets: create, rotate-secret and import show a generated secret once.
token and introspect take --client-secret or, better (it stays out of
shell history and process lists), the GATEHOUSE_CLIENT_SECRET variable.
`,
		CobraFunc: buildGatehouseCommand,
	})
}

// secretEnv names the variable token and introspect read the client
// secret from when --client-secret is not given.
const secretEnv = "GATEHOUSE_CLIENT_SECRET"

// adminTimeout bounds one admin API call (backups are not bounded: they
// stream as long as the file is).
const adminTimeout = time.Minute

func buildGatehouseCommand(cmd *cobra.Command) {
	pf := cmd.PersistentFlags()
	pf.String("admin", "", "Address of Caddy's admin API (default: from --config, CADDY_ADMIN or localhost:2019)")
	pf.StringP("config", "c", "", "Config file to read the admin address from")
	pf.StringP("adapter", "a", "", "Adapter of the config file")
	pf.Bool("json", false, "Print JSON instead of tables")

	client := &cobra.Command{Use: "client", Short: "Create, list, change, rotate and import OAuth clients"}
	client.AddCommand(
		clientCreateCmd(), clientListCmd(), clientGetCmd(), clientUpdateCmd(), clientDeleteCmd(),
		clientRotateCmd(), clientSwitchCmd("disable", true), clientSwitchCmd("enable", false), clientImportCmd(),
	)
	keys := &cobra.Command{Use: "keys", Short: "Rotate the token-sealing and identity-signing keys"}
	keys.AddCommand(keysRotateCmd())
	cmd.AddCommand(client, keys, backupCmd(), restoreCmd(), healthCmd(), tokenCmd(), introspectCmd())
}

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

func backupCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "backup FILE",
		Short: "Download a consistent backup of the client database while Caddy runs",
		Long: `Streams a hot backup of the bbolt database (GET /gatehouse/backup) into
FILE (mode 0600), checks that it is complete and opens as a Gatehouse
store, then moves it into place. The backup holds the secret-hashing and
token keys: keep it as safe as the database. To restore, stop Caddy (or
load a config without gatehouse), put FILE in place of the database, or
point "storage bolt" at it, and start again.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dest := args[0]
			if force, _ := cmd.Flags().GetBool("force"); !force {
				if _, err := os.Stat(dest); err == nil {
					return fmt.Errorf("%s exists (use --force to replace it)", dest)
				}
			}
			api, err := newAdminClient(cmd)
			if err != nil {
				return err
			}
			api.http.Timeout = 0 // as long as the file takes
			resp, err := api.open(http.MethodGet, adminBackupPath, nil, nil)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			tmp, err := os.CreateTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".*.tmp")
			if err != nil {
				return err
			}
			defer os.Remove(tmp.Name()) // after a successful rename, a no-op
			n, err := io.Copy(tmp, resp.Body)
			if err == nil && resp.ContentLength >= 0 && n != resp.ContentLength {
				err = fmt.Errorf("backup incomplete: %d of %d bytes", n, resp.ContentLength)
			}
			if err == nil {
				err = tmp.Sync()
			}
			if cerr := tmp.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("writing the backup: %w", err)
			}
			info, err := clientstore.InspectBackup(tmp.Name())
			if err != nil {
				return fmt.Errorf("the downloaded backup does not open: %w", err)
			}
			if err := os.Rename(tmp.Name(), dest); err != nil {
				return err
			}
			if jsonOutput(cmd) {
				return printJSON(cmd, map[string]any{"file": dest, "bytes": n, "clients": info.Clients, "schema_version": info.SchemaVersion})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Wrote %s: %d bytes, %d clients, schema version %d.\n", dest, n, info.Clients, info.SchemaVersion)
			return nil
		},
	}
	cmd.Flags().Bool("force", false, "Replace FILE if it exists")
	return cmd
}

// credentialFlags are the client credentials of token and introspect.
func keysRotateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "rotate",
		Short: "Add a new token-sealing key and a new identity-signing key (every node)",
		Long: `Rotates the keys (POST /gatehouse/keys/rotate): new access tokens are
sealed, and new identity JWTs and JWT access tokens signed, with new keys at
once, on every node sharing the store. The replaced keys stay: tokens and
JWTs made before keep verifying, and the JWKS keeps publishing the old
public key until a later rotation after the token lifetime.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			api, err := newAdminClient(cmd)
			if err != nil {
				return err
			}
			_, b, err := api.call(http.MethodPost, adminRotatePath, nil, nil)
			if err != nil {
				return err
			}
			var rot map[string]any
			if err := json.Unmarshal(b, &rot); err != nil {
				return fmt.Errorf("unexpected answer: %v", err)
			}
			if jsonOutput(cmd) {
				return printJSON(cmd, rot)
			}
			return printFields(cmd, rot, "signing_kid")
		},
	}
}

func healthCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "health",
		Short: "Show how current this node's view of the store is (exit status 1 when stale)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			api, err := newAdminClient(cmd)
			if err != nil {
				return err
			}
			_, b, err := api.call(http.MethodGet, adminHealthPath, nil, nil)
			if err != nil {
				return err
			}
			var h map[string]any
			if err := json.Unmarshal(b, &h); err != nil {
				return fmt.Errorf("unexpected answer: %v", err)
			}
			if jsonOutput(cmd) {
				return printJSON(cmd, h)
			}
			return printFields(cmd, h, "status")
		},
	}
}

func restoreCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "restore FILE",
		Short: "Write a backup (or a stopped node's bbolt file) into the running store",
		Long: `Uploads FILE, a Gatehouse backup (from "caddy gatehouse backup", of either
backend) or the bbolt database of a stopped single node, to the running
Caddy (POST /gatehouse/restore), which writes it into its store. The store
must have no clients yet. Clients keep their secrets and generations and
the key rings are united, so tokens minted before stay valid: this is how
a single node moves to an etcd cluster. On etcd, every node picks the
restored state up through its watch.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			info, err := clientstore.InspectBackup(args[0])
			if err != nil {
				return fmt.Errorf("%s is not a backup this version can restore: %w", args[0], err)
			}
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			api, err := newAdminClient(cmd)
			if err != nil {
				return err
			}
			api.http.Timeout = 0 // as long as the file takes
			_, b, err := api.call(http.MethodPost, adminRestorePath, f, http.Header{"Content-Type": {"application/octet-stream"}})
			if err != nil {
				return err
			}
			var rep map[string]any
			if err := json.Unmarshal(b, &rep); err != nil {
				return fmt.Errorf("unexpected answer: %v", err)
			}
			if jsonOutput(cmd) {
				return printJSON(cmd, rep)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Restored %s (%d clients in the file): %v clients, %v keys, %v revocations.\n",
				args[0], info.Clients, rep["clients"], rep["keys"], rep["revocations"])
			return nil
		},
	}
}

func credentialFlags(cmd *cobra.Command) {
	cmd.Flags().String("client-id", "", "client_id (required)")
	cmd.Flags().String("client-secret", "", "client_secret (default: $"+secretEnv+")")
	cmd.Flags().String("auth-method", clientstore.AuthMethodBasic, "client_secret_basic or client_secret_post")
}

func credentials(cmd *cobra.Command) (id, secret, method string, err error) {
	id, _ = cmd.Flags().GetString("client-id")
	secret, _ = cmd.Flags().GetString("client-secret")
	method, _ = cmd.Flags().GetString("auth-method")
	if secret == "" {
		secret = os.Getenv(secretEnv)
	}
	switch {
	case id == "":
		return "", "", "", errors.New("--client-id is required")
	case secret == "":
		return "", "", "", errors.New("--client-secret (or " + secretEnv + ") is required")
	case method != clientstore.AuthMethodBasic && method != clientstore.AuthMethodPost:
		return "", "", "", fmt.Errorf("--auth-method: %s or %s", clientstore.AuthMethodBasic, clientstore.AuthMethodPost)
	}
	return id, secret, method, nil
}

func tokenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token --client-id ID [--client-secret SECRET] [--scope …] [--audience …] [--token-url URL]",
		Short: "Fetch an access token with the client_credentials grant",
		Long: `Asks the token endpoint for an access token (RFC 6749 §4.4) and prints
it alone, ready for TOKEN=$(caddy gatehouse token …); --json prints the
whole token response. The endpoint is --token-url, else the running
gatehouse app's issuer + /oauth2/token.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			id, secret, method, err := credentials(cmd)
			if err != nil {
				return err
			}
			endpoint, _ := cmd.Flags().GetString("token-url")
			if endpoint == "" {
				if endpoint, err = issuerURL(cmd, pathToken); err != nil {
					return err
				}
			}
			form := url.Values{"grant_type": {clientstore.GrantClientCredentials}}
			if s, _ := cmd.Flags().GetString("scope"); s != "" {
				form.Set("scope", s)
			}
			if aud, _ := cmd.Flags().GetStringArray("audience"); len(aud) > 0 {
				form["audience"] = aud // Hydra's parameter: any string, not only URIs as RFC 8707 resource
			}
			b, err := postForm(endpoint, form, id, secret, method, nil)
			if err != nil {
				return err
			}
			if jsonOutput(cmd) {
				return printRaw(cmd, b)
			}
			var tok tokenResponse
			if err := json.Unmarshal(b, &tok); err != nil || tok.AccessToken == "" {
				return fmt.Errorf("unexpected token response: %.200s", b)
			}
			fmt.Fprintln(cmd.OutOrStdout(), tok.AccessToken)
			fmt.Fprintf(cmd.ErrOrStderr(), "%s token, expires in %ds, scope %q\n", tok.TokenType, tok.ExpiresIn, tok.Scope)
			return nil
		},
	}
	credentialFlags(cmd)
	cmd.Flags().String("scope", "", "Requested scopes, space-separated (default: all of the client's)")
	cmd.Flags().StringArray("audience", nil, "Requested audience (repeatable; default: all of the client's)")
	cmd.Flags().String("token-url", "", "Token endpoint (default: the running issuer + "+pathToken+")")
	return cmd
}

func introspectCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "introspect TOKEN|- --client-id ID [--client-secret SECRET]",
		Short: "Ask the authorization server about a token (RFC 7662)",
		Long: `Sends the token (- reads it from stdin) to the introspection endpoint,
authenticated as a client allowed to introspect, and prints the answer.
An inactive token is an answer, not a failure: it prints active false
and exits 0. The endpoint is --introspect-url, else the running gatehouse
app's issuer + /oauth2/introspect.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, secret, method, err := credentials(cmd)
			if err != nil {
				return err
			}
			token := args[0]
			if token == "-" {
				b, err := readInput(cmd, "-")
				if err != nil {
					return err
				}
				token = strings.TrimSpace(string(b))
			}
			endpoint, _ := cmd.Flags().GetString("introspect-url")
			if endpoint == "" {
				if endpoint, err = issuerURL(cmd, pathIntrospect); err != nil {
					return err
				}
			}
			b, err := postForm(endpoint, url.Values{"token": {token}}, id, secret, method, nil)
			if err != nil {
				return err
			}
			if jsonOutput(cmd) {
				return printRaw(cmd, b)
			}
			var res map[string]any
			dec := json.NewDecoder(bytes.NewReader(b))
			dec.UseNumber()
			if err := dec.Decode(&res); err != nil {
				return fmt.Errorf("unexpected introspection response: %.200s", b)
			}
			return printFields(cmd, res, "")
		},
	}
	credentialFlags(cmd)
	cmd.Flags().String("introspect-url", "", "Introspection endpoint (default: the running issuer + "+pathIntrospect+")")
	return cmd
}

// issuerURL derives an endpoint from the running gatehouse app's issuer,
// read from the admin API's config.
func issuerURL(cmd *cobra.Command, path string) (string, error) {
	api, err := newAdminClient(cmd)
	if err != nil {
		return "", err
	}
	_, b, err := api.call(http.MethodGet, "/config/apps/gatehouse/issuer", nil, nil)
	if err != nil {
		return "", fmt.Errorf("finding the issuer (or pass the endpoint URL): %w", err)
	}
	var iss string
	if err := json.Unmarshal(b, &iss); err != nil || iss == "" {
		return "", errors.New("the running config has no gatehouse issuer; pass the endpoint URL")
	}
	return strings.TrimSuffix(iss, "/") + path, nil
}

// postForm sends an authenticated form to an OAuth endpoint and returns
// the body of a 2xx answer; otherwise an error with the RFC 6749 §5.2
// error and description.
func postForm(endpoint string, form url.Values, id, secret, method string, client *http.Client) ([]byte, error) {
	if client == nil {
		client = &http.Client{Timeout: adminTimeout}
	}
	if method == clientstore.AuthMethodPost {
		form.Set("client_id", id)
		form.Set("client_secret", secret)
	}
	req, err := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if method == clientstore.AuthMethodBasic {
		// RFC 6749 §2.3.1: form-encode both before Basic.
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		var oe oauthError
		if json.Unmarshal(b, &oe) == nil && oe.Code != "" {
			return nil, fmt.Errorf("%s: HTTP %d: %s: %s", endpoint, resp.StatusCode, oe.Code, oe.Description)
		}
		return nil, fmt.Errorf("%s: HTTP %d: %.200s", endpoint, resp.StatusCode, b)
	}
	return b, nil
}

// adminClient talks to Caddy's admin API over TCP or a unix socket, as
// caddycmd.AdminAPIRequest does, keeping error bodies readable.
type adminClient struct {
	base   string // scheme://host used in URLs
	http   *http.Client
	addr   string // for messages
	origin string // Origin header; none over a unix socket, as caddy's own commands do
}

func newAdminClient(cmd *cobra.Command) (*adminClient, error) {
	f := cmd.Flags()
	addr, _ := f.GetString("admin")
	cfg, _ := f.GetString("config")
	adapter, _ := f.GetString("adapter")
	addr, err := caddycmd.DetermineAdminAPIAddress(addr, nil, cfg, adapter)
	if err != nil {
		return nil, fmt.Errorf("finding the admin API: %w", err)
	}
	na, err := caddy.ParseNetworkAddress(addr)
	if err != nil || na.PortRangeSize() > 1 || na.IsFdNetwork() {
		return nil, fmt.Errorf("admin address %q: not one TCP address or unix socket", addr)
	}
	network, dial := na.Network, na.JoinHostPort(0)
	base, origin := "http://"+dial, "http://"+dial
	if na.IsUnixNetwork() {
		dial, _, _ = strings.Cut(dial, "|") // drop the socket's permission bits
		base, origin = "http://127.0.0.1", ""
	}
	transport := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, dial)
		},
	}
	return &adminClient{base: base, addr: addr, origin: origin, http: &http.Client{Transport: transport, Timeout: adminTimeout}}, nil
}

// open sends a request and returns the response of a 2xx answer, else an
// error carrying the server's message.
func (a *adminClient) open(method, path string, body io.Reader, h http.Header) (*http.Response, error) {
	req, err := http.NewRequest(method, a.base+path, body)
	if err != nil {
		return nil, err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	if body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if a.origin != "" {
		req.Header.Set("Origin", a.origin)
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("admin API: %w (is Caddy running with its admin endpoint at %s?)", err, a.addr)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e struct {
		Error string `json:"error"`
	}
	msg := strings.TrimSpace(string(b))
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	return nil, fmt.Errorf("%s %s: HTTP %d %s: %s", method, path, resp.StatusCode, http.StatusText(resp.StatusCode), msg)
}

// call is open for small JSON answers.
func (a *adminClient) call(method, path string, body io.Reader, h http.Header) (*http.Response, []byte, error) {
	resp, err := a.open(method, path, body, h)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
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

func readInput(cmd *cobra.Command, name string) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(io.LimitReader(cmd.InOrStdin(), maxImportBody+1))
	}
	return os.ReadFile(name)
}

func jsonOutput(cmd *cobra.Command) bool {
	v, _ := cmd.Flags().GetBool("json")
	return v
}

func table(cmd *cobra.Command) *tabwriter.Writer {
	return tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func printJSON(cmd *cobra.Command, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(cmd.OutOrStdout(), string(b))
	return err
}

// printRaw re-indents a JSON answer of the server, keeping its numbers.
func printRaw(cmd *cobra.Command, b []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, b, "", "  "); err != nil {
		return fmt.Errorf("unexpected response: %.200s", b)
	}
	_, err := fmt.Fprintln(cmd.OutOrStdout(), buf.String())
	return err
}

// printClient shows a client answer: its JSON with --json, else one field
// a line, the secret (create, rotate) and the ETag included.
func printClient(cmd *cobra.Command, b []byte, etag string) error {
	if jsonOutput(cmd) {
		return printRaw(cmd, b)
	}
	var fields map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&fields); err != nil {
		return fmt.Errorf("unexpected client response: %.200s", b)
	}
	if etag != "" {
		fields["etag"] = etag
	}
	return printFields(cmd, fields, "client_id")
}

// printFields prints an object as "key  value" lines, first first, the
// rest sorted; nested values as compact JSON.
func printFields(cmd *cobra.Command, fields map[string]any, first string) error {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		if k != first {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	if _, ok := fields[first]; ok {
		keys = append([]string{first}, keys...)
	}
	w := table(cmd)
	for _, k := range keys {
		var v string
		switch x := fields[k].(type) {
		case string:
			v = x
		case nil:
			v = "-"
		default:
			b, _ := json.Marshal(x)
			v = string(b)
		}
		if n, ok := fields[k].(json.Number); ok && (k == "exp" || k == "iat" || k == "nbf") {
			if sec, err := n.Int64(); err == nil {
				v += " (" + time.Unix(sec, 0).UTC().Format(time.RFC3339) + ")"
			}
		}
		fmt.Fprintf(w, "%s\t%s\n", k, dash(v))
	}
	return w.Flush()
}
