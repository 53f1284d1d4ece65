// Command xbuild builds Caddy with Gatehouse (and any other plugins) from
// the build manifest xcaddy.json, using xcaddy's Go API: the manifest's
// fields are xcaddy.Builder's own JSON tags, so changing the Caddy version
// or adding a plugin is an edit to that file alone.
//
//	go run ./caddymodule/internal/xbuild [-manifest xcaddy.json] [-o caddy]
//
// Relative replacement paths in the manifest (such as "." for this
// repository) are resolved against the manifest's directory.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"

	"github.com/caddyserver/xcaddy"
)

func main() {
	manifest := flag.String("manifest", "xcaddy.json", "build manifest (xcaddy.Builder as JSON)")
	output := flag.String("o", "caddy", "output binary")
	flag.Parse()
	if err := build(*manifest, *output); err != nil {
		log.Fatalf("xbuild: %v", err)
	}
}

func build(manifest, output string) error {
	raw, err := os.ReadFile(manifest)
	if err != nil {
		return err
	}
	var b xcaddy.Builder
	if err := json.Unmarshal(raw, &b); err != nil {
		return fmt.Errorf("%s: %w", manifest, err)
	}
	if b.CaddyVersion == "" {
		return fmt.Errorf("%s: caddy_version is required", manifest)
	}
	dir, err := filepath.Abs(filepath.Dir(manifest))
	if err != nil {
		return err
	}
	for i, r := range b.Replacements {
		p := string(r.New)
		// As in go.mod, a directory replacement starts with ./ or ../.
		if p == "." || p == ".." || strings.HasPrefix(p, "./") || strings.HasPrefix(p, "../") {
			b.Replacements[i].New = xcaddy.ReplacementPath(filepath.Join(dir, p))
		}
	}
	if err := setProxyFallthrough(); err != nil {
		return err
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()
	return b.Build(ctx, output)
}

// setProxyFallthrough makes module lookups fall through to "off" after the
// configured proxies fail in any way. xcaddy's `go get` asks the proxy
// whether the plugin's package path (…/caddymodule) is a module of its own;
// some proxies answer 403 rather than 404, which `go get` treats as fatal
// instead of settling on the locally replaced parent module.
func setProxyFallthrough() error {
	out, err := exec.Command("go", "env", "GOPROXY").Output()
	if err != nil {
		return fmt.Errorf("go env GOPROXY: %w", err)
	}
	var proxies []string
	for _, p := range strings.FieldsFunc(strings.TrimSpace(string(out)), func(r rune) bool { return r == ',' || r == '|' }) {
		if p != "direct" && p != "off" {
			proxies = append(proxies, p)
		}
	}
	if len(proxies) == 0 {
		return nil // direct only: nothing to fall through
	}
	return os.Setenv("GOPROXY", strings.Join(append(proxies, "off"), "|"))
}
