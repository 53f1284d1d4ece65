package clientauth

// Reading client credentials from a request: HTTP Basic (RFC 6749 §2.3.1),
// the form (client_secret_post, private_key_jwt), and what is refused.

import (
	"encoding/base64"
	"errors"
	"net/url"
	"testing"

	"github.com/gatehousehq/gatehouse/clientstore"
)

// b64 is standard base64, the encoding HTTP Basic uses (RFC 7617 §2).
func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// TestParseBasic checks the decoding of client_secret_basic: RFC 6749
// §2.3.1 form-urlencodes id and secret before RFC 7617 base64, so both are
// decoded again; anything malformed is refused rather than guessed at.
func TestParseBasic(t *testing.T) {
	cases := []struct {
		name       string
		values     []string
		id, secret string
		has, ok    bool
	}{
		{name: "no Authorization header", values: nil, has: false, ok: true},
		{name: "Bearer is not Basic", values: []string{"Bearer abc"}, has: false, ok: true},
		{name: "scheme without credentials", values: []string{"Basic"}, has: false, ok: true},
		{name: "plain id and secret", values: []string{"Basic " + b64("orders:s3cret")}, id: "orders", secret: "s3cret", has: true, ok: true},
		{name: "scheme is case-insensitive (RFC 7235 §2.1)", values: []string{"bAsIc " + b64("orders:s3cret")}, id: "orders", secret: "s3cret", has: true, ok: true},
		{name: "several spaces after the scheme", values: []string{"Basic   " + b64("orders:s3cret")}, id: "orders", secret: "s3cret", has: true, ok: true},
		{name: "percent-escaped colon and plus in the id (§2.3.1)", values: []string{"Basic " + b64("svc%3Aa%2Bb:s%2F%3D")}, id: "svc:a+b", secret: "s/=", has: true, ok: true},
		{name: "plus is a form-encoded space", values: []string{"Basic " + b64("a+b:c+d")}, id: "a b", secret: "c d", has: true, ok: true},
		{name: "colon in the secret", values: []string{"Basic " + b64("orders:se:cret")}, id: "orders", secret: "se:cret", has: true, ok: true},
		{name: "empty secret", values: []string{"Basic " + b64("orders:")}, id: "orders", secret: "", has: true, ok: true},
		{name: "UTF-8 after decoding", values: []string{"Basic " + b64("%C3%A9t%C3%A9:%E2%82%AC")}, id: "été", secret: "€", has: true, ok: true},
		{name: "Basic beside a Bearer header", values: []string{"Bearer x", "Basic " + b64("orders:s3cret")}, id: "orders", secret: "s3cret", has: true, ok: true},
		{name: "malformed base64", values: []string{"Basic !!!"}, has: true, ok: false},
		{name: "base64url alphabet is not Basic's", values: []string{"Basic " + base64.RawURLEncoding.EncodeToString([]byte("a:b?>"))}, has: true, ok: false},
		{name: "trailing garbage after base64", values: []string{"Basic " + b64("orders:s3cret") + " x"}, has: true, ok: false},
		{name: "no colon", values: []string{"Basic " + b64("orders")}, has: true, ok: false},
		{name: "bad percent-escape in the id", values: []string{"Basic " + b64("or%zz:s3cret")}, has: true, ok: false},
		{name: "truncated percent-escape in the secret", values: []string{"Basic " + b64("orders:s3cret%")}, has: true, ok: false},
		{name: "two Basic headers", values: []string{"Basic " + b64("a:b"), "Basic " + b64("c:d")}, has: true, ok: false},
		{name: "two identical Basic headers", values: []string{"Basic " + b64("a:b"), "Basic " + b64("a:b")}, has: true, ok: false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id, secret, has, ok := parseBasic(tc.values)
			if has != tc.has || ok != tc.ok {
				t.Fatalf("parseBasic(%q): has=%v ok=%v, want has=%v ok=%v", tc.values, has, ok, tc.has, tc.ok)
			}
			if id != tc.id || secret != tc.secret {
				t.Errorf("parseBasic(%q) = id %q secret %q, want id %q secret %q", tc.values, id, secret, tc.id, tc.secret)
			}
		})
	}
}

// FuzzParseBasic: the Basic credentials parser never panics, and what it
// accepts survives a round trip through the RFC 6749 §2.3.1 encoding
// (form-urlencode, then base64).
func FuzzParseBasic(f *testing.F) {
	for _, s := range []string{
		"Basic " + b64("orders:s3cret"),
		"Basic " + b64("svc%3Aa%2Bb:s%2F%3D"),
		"Basic " + b64("a+b:c+d"),
		"Basic " + b64("%C3%A9:%zz"),
		"Basic " + b64("no-colon"),
		"basic   " + b64(":"),
		"Basic !!!",
		"Basic",
		"Bearer abc",
		"",
	} {
		f.Add(s, "")
	}
	f.Add("Basic "+b64("a:b"), "Basic "+b64("c:d"))
	f.Add("Bearer x", "Basic "+b64("a:b"))
	f.Fuzz(func(t *testing.T, first, second string) {
		values := []string{first}
		if second != "" {
			values = append(values, second)
		}
		id, secret, has, ok := parseBasic(values)
		if (!has || !ok) && (id != "" || secret != "") {
			t.Fatalf("parseBasic(%q): has=%v ok=%v yet returned id %q secret %q", values, has, ok, id, secret)
		}
		if !has && !ok {
			t.Fatalf("parseBasic(%q): has=false with ok=false; no Basic header is not malformed", values)
		}
		if !has || !ok {
			return
		}
		again := "Basic " + b64(url.QueryEscape(id)+":"+url.QueryEscape(secret))
		id2, secret2, has2, ok2 := parseBasic([]string{again})
		if !has2 || !ok2 || id2 != id || secret2 != secret {
			t.Fatalf("round trip of id %q secret %q via %q: got id %q secret %q has=%v ok=%v",
				id, secret, again, id2, secret2, has2, ok2)
		}
	})
}

// RFC 6749 §2.3.1: credentials never travel in the query string.
func TestCheckQuery(t *testing.T) {
	for _, q := range []string{"client_secret=s", "client_assertion=a.b.c", "client_id=svc&client_secret=s"} {
		v, _ := url.ParseQuery(q)
		if err := CheckQuery(v); !errors.Is(err, ErrCredentialsInQuery) {
			t.Errorf("CheckQuery(%s) = %v, want ErrCredentialsInQuery", q, err)
		}
	}
	for _, q := range []string{"", "client_id=svc", "grant_type=client_credentials&scope=a"} {
		v, _ := url.ParseQuery(q)
		if err := CheckQuery(v); err != nil {
			t.Errorf("CheckQuery(%s) = %v, want nil", q, err)
		}
	}
}

// Exactly one authentication method per request (RFC 6749 §2.3: "MUST NOT
// use more than one"), read from the Authorization header or the form.
func TestReadCredentials(t *testing.T) {
	basic := []string{"Basic " + b64("svc:s3cret")}
	cases := []struct {
		name  string
		authz []string
		form  string
		want  Credentials
		err   error
	}{
		{name: "client_secret_basic", authz: basic,
			want: Credentials{Method: clientstore.AuthMethodBasic, ClientID: "svc", Secret: "s3cret"}},
		{name: "Basic with the same client_id in the body", authz: basic, form: "client_id=svc",
			want: Credentials{Method: clientstore.AuthMethodBasic, ClientID: "svc", Secret: "s3cret"}},
		{name: "Basic beside a Bearer header", authz: []string{"Bearer x", basic[0]},
			want: Credentials{Method: clientstore.AuthMethodBasic, ClientID: "svc", Secret: "s3cret"}},
		{name: "client_secret_post", form: "client_id=svc&client_secret=s3cret",
			want: Credentials{Method: clientstore.AuthMethodPost, ClientID: "svc", Secret: "s3cret"}},
		{name: "client_secret_post without client_id", form: "client_secret=s3cret",
			want: Credentials{Method: clientstore.AuthMethodPost, Secret: "s3cret"}},
		{name: "private_key_jwt", form: "client_assertion_type=" + url.QueryEscape(ClientAssertionType) + "&client_assertion=a.b.c",
			want: Credentials{Method: clientstore.AuthMethodPrivateKeyJWT, Assertion: "a.b.c", AssertionType: ClientAssertionType}},
		{name: "private_key_jwt with client_id", form: "client_id=svc&client_assertion_type=x&client_assertion=a.b.c",
			want: Credentials{Method: clientstore.AuthMethodPrivateKeyJWT, ClientID: "svc", Assertion: "a.b.c", AssertionType: "x"}},
		{name: "an assertion type alone is private_key_jwt", form: "client_assertion_type=x",
			want: Credentials{Method: clientstore.AuthMethodPrivateKeyJWT, AssertionType: "x"}},
		{name: "nothing", err: ErrNoCredentials},
		{name: "a Bearer header is no client authentication", authz: []string{"Bearer x"}, err: ErrNoCredentials},
		{name: "client_id alone", form: "client_id=svc", err: ErrNoCredentials},
		{name: "malformed Basic", authz: []string{"Basic !!!"}, err: ErrMalformedBasic},
		{name: "two Basic headers", authz: []string{basic[0], basic[0]}, err: ErrMalformedBasic},
		{name: "Basic and client_secret", authz: basic, form: "client_secret=s3cret", err: ErrMultipleMethods},
		{name: "Basic and client_assertion", authz: basic, form: "client_assertion=a.b.c", err: ErrMultipleMethods},
		{name: "Basic and client_assertion_type", authz: basic, form: "client_assertion_type=x", err: ErrMultipleMethods},
		{name: "client_secret and client_assertion", form: "client_id=svc&client_secret=s&client_assertion=a.b.c", err: ErrMultipleMethods},
		{name: "Basic and another client_id in the body", authz: basic, form: "client_id=other", err: ErrClientIDMismatch},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			form, err := url.ParseQuery(tc.form)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ReadCredentials(tc.authz, form)
			if tc.err != nil {
				if !errors.Is(err, tc.err) || got != (Credentials{}) {
					t.Fatalf("ReadCredentials = %+v, %v; want %v", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ReadCredentials = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}
