package caddymodule

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

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
