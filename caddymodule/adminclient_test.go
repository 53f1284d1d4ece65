package caddymodule

import (
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// The CLI reaches an admin endpoint on a unix socket (permission bits in
// the address are not part of the path), sends no Origin there, as
// caddy's own commands do, and reports the server's error message.
func TestAdminClientUnixSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "admin.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Skipf("unix sockets unavailable: %v", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Origin") != "" {
			http.Error(w, `{"error":"unexpected Origin"}`, http.StatusForbidden)
			return
		}
		if r.URL.Path == "/gatehouse/clients/x" {
			w.Header().Set("ETag", `"9"`)
			fmt.Fprint(w, `{"client_id":"x"}`)
			return
		}
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"error":"client \"y\" not found"}`)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	for _, addr := range []string{"unix/" + sock, "unix/" + sock + "|0220"} {
		out, _, err := runCLI(t, "", "client", "get", "x", "--admin", addr)
		if err != nil || field(t, out, "etag") != `"9"` {
			t.Errorf("get over %s: %v\n%s", addr, err, out)
		}
	}
	_, _, err = runCLI(t, "", "client", "get", "y", "--admin", "unix/"+sock)
	if err == nil || !strings.Contains(err.Error(), `HTTP 404 Not Found: client "y" not found`) {
		t.Errorf("error over the socket: %v, want the server's message", err)
	}
}
