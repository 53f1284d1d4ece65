package caddymodule

import (
	"io"
	"os"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
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

func readInput(cmd *cobra.Command, name string) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(io.LimitReader(cmd.InOrStdin(), maxImportBody+1))
	}
	return os.ReadFile(name)
}
