package remote

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gatehousehq/gatehouse/introspection"
)

// FuzzParseResponse: the response parser never panics; what it accepts
// has a boolean active; and a verdict either refuses the token as invalid
// or accepts an active access token of a trusted issuer, cached no longer
// than cache_ttl and never past its exp. The seeds run as a normal test.
func FuzzParseResponse(f *testing.F) {
	for _, s := range []string{
		`{"active":true,"client_id":"svc","sub":"svc","scope":"a b","aud":["x"],"iss":"https://hydra.example.com/","exp":1893553445,"iat":1,"token_use":"access_token","ext":{"a":{"b":1}}}`,
		`{"active":true,"client_id":"svc","iss":"https://hydra.example.com/","exp":1893553445.9,"aud":"x"}`,
		`{"active":true,"sub":"u","iss":"https://hydra.example.com/"}`,
		`{"active":true,"client_id":"svc","iss":"https://hydra.example.com/","exp":0}`,
		`{"active":true,"client_id":"svc","iss":"https://hydra.example.com/","exp":-9223372036854775808}`,
		`{"active":true,"client_id":"svc","iss":"https://hydra.example.com/","exp":1e400}`,
		`{"active":true,"client_id":"svc","iss":"https://hydra.example.com/","exp":null,"cnf":null}`,
		`{"active":true,"client_id":"svc","iss":"https://hydra.example.com/","token_type":"dpop"}`,
		`{"active":true,"client_id":"svc","iss":"https://hydra.example.com/","client":{"owner":"o"}}`,
		`{"active":true,"client_id":"svc","iss":"https://evil.example/"}`,
		`{"active":true,"token_use":"id_token","client_id":"svc","iss":"https://hydra.example.com/"}`,
		`{"active":false}`,
		`{"active":"true"}`,
		`{"active":true,"aud":[1]}`,
		`{"active":true,"ext":[]}`,
		`{"active":true}{"active":false}`,
		`{}`, `null`, `[]`, `true`, ``, `<html>`,
		`{"active":true,"ext":` + strings.Repeat(`{"a":`, 100) + `1` + strings.Repeat(`}`, 100) + `}`,
	} {
		f.Add([]byte(s))
	}
	c := &Client{cfg: Config{CacheTTL: 30 * time.Second, NegativeTTL: 5 * time.Second, TrustedIssuers: []string{testIssuer}}}
	f.Fuzz(func(t *testing.T, body []byte) {
		a, err := parseResponse(body)
		if err != nil {
			if !errors.Is(err, ErrBadResponse) {
				t.Fatalf("parse error %v does not wrap ErrBadResponse", err)
			}
			return
		}
		if a.Active == nil {
			t.Fatal("accepted an answer without a boolean active")
		}
		e := c.judge(a, t0, len(body))
		if e.err != nil {
			if !errors.Is(e.err, introspection.ErrInvalidToken) {
				t.Fatalf("refusal %v does not wrap ErrInvalidToken", e.err)
			}
			return
		}
		r := e.res
		switch {
		case !*a.Active:
			t.Fatal("an inactive token was accepted")
		case a.TokenUse != "" && a.TokenUse != "access_token":
			t.Fatalf("token_use %q was accepted", a.TokenUse)
		case r.Issuer != testIssuer:
			t.Fatalf("issuer %q was accepted", r.Issuer)
		case r.Remote == nil || r.Token != "":
			t.Fatal("an accepted result without Remote, or holding a token")
		case e.until.After(t0.Add(30 * time.Second)):
			t.Fatalf("cached until %v, past cache_ttl", e.until)
		}
		if exp := r.Claims.ExpiresAt; exp != 0 && (exp <= t0.Unix() || e.until.After(time.Unix(exp, 0))) {
			t.Fatalf("exp %d accepted at %d or cached until %v, past it", exp, t0.Unix(), e.until)
		}
		if !r.Remote.Until.Equal(e.until) {
			t.Fatalf("Remote.Until %v differs from the cache bound %v", r.Remote.Until, e.until)
		}
	})
}
