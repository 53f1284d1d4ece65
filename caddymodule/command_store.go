package caddymodule

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"

	"github.com/gatehousehq/gatehouse/clientstore"
	"github.com/spf13/cobra"
)

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
