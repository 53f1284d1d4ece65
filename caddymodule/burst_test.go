package caddymodule

// The token endpoint under a burst far beyond its capacity, on a real
// Caddy process (this test binary run as Caddy, see TestMain):
//
//	go test ./caddymodule -run '^$' -bench '^BenchmarkTokenBurst$' -benchtime 1x
//
// -burst.conns keep-alive connections send token requests as fast as
// they can for -burst.duration, with the default admission and with it out
// of the way, for a client with Gatehouse's own secret hash (a microsecond
// to check) and one imported from Hydra (PBKDF2, 25,000 iterations:
// milliseconds), while the process's RSS is sampled.

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehousehq/gatehouse/clientstore/etcdtest"
)

var (
	burstConns    = flag.Int("burst.conns", 1000, "BenchmarkTokenBurst: concurrent keep-alive connections")
	burstDuration = flag.Duration("burst.duration", 5*time.Second, "BenchmarkTokenBurst: how long each leg sends")
)

func BenchmarkTokenBurst(b *testing.B) {
	fmt.Printf("\n%-44s %9s %9s %9s %9s %9s %9s\n", "token endpoint", "issued/s", "shed", "p50", "p99", "idle MiB", "max MiB")
	for _, imported := range []bool{false, true} {
		for _, leg := range []struct{ name, options string }{
			{"default admission", ""},
			{"admission out of the way", "token_concurrency 1000000"},
		} {
			name := leg.name + ", HMAC secret"
			if imported {
				name = leg.name + ", PBKDF2 secret"
			}
			tokenBurst(b, name, leg.options, imported)
		}
	}
}

func tokenBurst(b *testing.B, name, options string, imported bool) {
	dir := b.TempDir()
	adminPort, port := etcdtest.FreePort(b), etcdtest.FreePort(b)
	admin := fmt.Sprintf("http://127.0.0.1:%d", adminPort)
	cmd := startCaddyBinary(b, "", dir, fmt.Sprintf(`{
	admin 127.0.0.1:%d
	http_port %d
	https_port %d
	persist_config off
	log {
		level ERROR
	}
	gatehouse {
		storage bolt %s
		issuer https://auth.example.com
		%s
	}
}
http://127.0.0.1:%d {
	bind 127.0.0.1
	gatehouse_server
}
`, adminPort, port, etcdtest.FreePort(b), filepath.Join(dir, "g.db"), options, port), admin+"/config/")
	defer func() {
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
	}()
	var c createdClientJSON
	if imported {
		c.ClientID, c.ClientSecret = "hydra-client", "a-secret-kept-from-hydra"
		hydra := fmt.Sprintf(`[{"client_id":%q,"grant_types":["client_credentials"],"client_secret_hash":%q}]`,
			c.ClientID, hydraPBKDF2Hash(b, c.ClientSecret))
		resp, err := http.Post(admin+"/gatehouse/clients/import", "application/json", strings.NewReader(hydra))
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("importing a client: %v %v", err, resp.Status)
		}
		resp.Body.Close()
	} else {
		resp, err := http.Post(admin+"/gatehouse/clients", "application/json", strings.NewReader(`{}`))
		if err != nil {
			b.Fatal(err)
		}
		err = json.NewDecoder(resp.Body).Decode(&c)
		resp.Body.Close()
		if err != nil || c.ClientSecret == "" {
			b.Fatalf("creating a client: %v", err)
		}
	}
	pid := cmd.Process.Pid
	idle := rssOf(pid)
	peak := idle
	ctx, cancel := context.WithTimeout(context.Background(), *burstDuration)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				peak = max(peak, rssOf(pid))
			}
		}
	})
	tokenURL := fmt.Sprintf("http://127.0.0.1:%d%s", port, pathToken)
	body := url.Values{"grant_type": {"client_credentials"}}.Encode()
	res := driveCtx(ctx, *burstConns, func() *http.Request {
		r, _ := http.NewRequest(http.MethodPost, tokenURL, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.SetBasicAuth(c.ClientID, c.ClientSecret)
		return r
	})
	wg.Wait()
	fmt.Printf("%-44s %9.0f %9d %9v %9v %9.1f %9.1f\n", name, res.rps, res.errors,
		res.p50.Round(time.Millisecond), res.p99.Round(time.Millisecond), mib(idle), mib(peak))
}
