package caddymodule

// Unit tests and fuzz targets for the pure helpers that read untrusted
// input: identity-header stripping and the token request form (RFC 6749
// §3.2). No Caddy runs here. HTTP Basic client credentials (RFC 6749
// §2.3.1) are read by package clientauth, and tested there.

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// TestStripHeader: every copy of the identity header is deleted whatever
// its case or with underscores for dashes (the forward_auth advisory
// GHSA-7r4p-vjf4-gxv4), and nothing else is touched.
func TestStripHeader(t *testing.T) {
	cases := []struct {
		name  string
		canon string
		in    http.Header
		keep  []string
	}{
		{
			name:  "case and underscore variants of the default header",
			canon: "X-Identity-Token",
			in: http.Header{
				"X-Identity-Token":  {"a", "b"},
				"x-identity-token":  {"c"},
				"X_Identity_Token":  {"d"},
				"x_IDENTITY-token":  {"e"},
				"X-IDENTITY_TOKEN":  {"f"},
				"X-Identity-Tokens": {"keep: longer name"},
				"X-Identity":        {"keep: shorter name"},
				"X Identity Token":  {"keep: spaces are not dashes"},
				"Authorization":     {"keep: Bearer t"},
				"X-Client-Owner":    {"keep"},
			},
			keep: []string{"Authorization", "X Identity Token", "X-Client-Owner", "X-Identity", "X-Identity-Tokens"},
		},
		{
			name:  "Authorization as the identity header",
			canon: "Authorization",
			in: http.Header{
				"Authorization": {"Bearer access-token"},
				"authorization": {"Bearer other"},
				"Authorisation": {"keep: different spelling"},
			},
			keep: []string{"Authorisation"},
		},
		{
			name:  "nothing to strip",
			canon: "X-Identity-Token",
			in:    http.Header{"Accept": {"*/*"}},
			keep:  []string{"Accept"},
		},
		{
			name:  "empty header",
			canon: "X-Identity-Token",
			in:    http.Header{},
			keep:  []string{},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			orig := tc.in.Clone()
			stripHeader(tc.in, tc.canon)
			got := make([]string, 0, len(tc.in))
			for k := range tc.in {
				got = append(got, k)
			}
			sort.Strings(got)
			if !reflect.DeepEqual(got, tc.keep) {
				t.Fatalf("after stripHeader(%q) keys are %q, want exactly %q", tc.canon, got, tc.keep)
			}
			for _, k := range tc.keep {
				if !reflect.DeepEqual(tc.in[k], orig[k]) {
					t.Errorf("kept header %q changed from %q to %q", k, orig[k], tc.in[k])
				}
			}
		})
	}
}

func TestHeaderNameMatch(t *testing.T) {
	cases := []struct {
		a, b string
		want bool
	}{
		{"X-Identity-Token", "X-Identity-Token", true},
		{"x-identity-token", "X-Identity-Token", true},
		{"X_IDENTITY_TOKEN", "X-Identity-Token", true},
		{"X-Identity-Token", "x_identity_token", true},
		{"X_Identity_Token", "X_Identity_Token", true},
		{"", "", true},
		{"X-Identity-Token", "X-Identity-Tokem", false},
		{"X-Identity-Token", "X-Identity-Tokens", false},
		{"X-Identity-Token", "X-Identity", false},
		{"X Identity Token", "X-Identity-Token", false},
		{"X.Identity.Token", "X-Identity-Token", false},
		// Only ASCII letters fold: '@'+32 is '`', '['+32 is '{'.
		{"X@", "x`", false},
		{"A[", "a{", false},
		{"\xc3\x84", "\xc3\xa4", false}, // Ä, ä: no Unicode folding in header names
	}
	for _, tc := range cases {
		if got := headerNameMatch(tc.a, tc.b); got != tc.want {
			t.Errorf("headerNameMatch(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
		if got := headerNameMatch(tc.b, tc.a); got != tc.want {
			t.Errorf("headerNameMatch(%q, %q) = %v, want %v (it must be symmetric)", tc.b, tc.a, got, tc.want)
		}
	}
}

// TestValidHeaderName: a configured header must be an RFC 9110 §5.1
// field-name token, or it could never be sent or would split the request.
func TestValidHeaderName(t *testing.T) {
	cases := []struct {
		name string
		want bool
	}{
		{"X-Identity-Token", true},
		{"Authorization", true},
		{"x_identity_token", true},
		{"X-1", true},
		{"!#$%&'*+-.^_`|~", true},
		{"", false},
		{"bad header", false},
		{"X:Y", false},
		{"X-Token\r\nX-Evil", false},
		{"X\tY", false},
		{"X-Tökén", false},
		{`X"Y`, false},
		{"X(Y)", false},
		{"X/Y", false},
	}
	for _, tc := range cases {
		if got := validHeaderName(tc.name); got != tc.want {
			t.Errorf("validHeaderName(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
}

const formType = "application/x-www-form-urlencoded"

// TestParseForm: the token request is a bounded form POST (RFC 6749 §3.2)
// in which no parameter repeats, except RFC 8707's repeatable `resource`
// and the `audience` list.
func TestParseForm(t *testing.T) {
	atLimit := "grant_type=client_credentials&pad=" + strings.Repeat("a", maxFormBytes-len("grant_type=client_credentials&pad="))
	cases := []struct {
		name        string
		contentType string
		body        string
		status      int // 0: parsed
		want        url.Values
	}{
		{name: "client credentials", contentType: formType, body: "grant_type=client_credentials&scope=a+b",
			want: url.Values{"grant_type": {"client_credentials"}, "scope": {"a b"}}},
		{name: "charset parameter", contentType: formType + "; charset=UTF-8", body: "grant_type=client_credentials",
			want: url.Values{"grant_type": {"client_credentials"}}},
		{name: "media type is case-insensitive", contentType: "Application/X-WWW-Form-URLEncoded", body: "a=1",
			want: url.Values{"a": {"1"}}},
		{name: "empty body", contentType: formType, body: "", want: url.Values{}},
		{name: "resource repeats (RFC 8707 §2)", contentType: formType, body: "resource=https://a.example&resource=https://b.example",
			want: url.Values{"resource": {"https://a.example", "https://b.example"}}},
		{name: "audience repeats", contentType: formType, body: "audience=a&audience=b",
			want: url.Values{"audience": {"a", "b"}}},
		{name: "body of exactly 64 KiB", contentType: formType, body: atLimit,
			want: url.Values{"grant_type": {"client_credentials"}, "pad": {atLimit[len("grant_type=client_credentials&pad="):]}}},
		{name: "repeated grant_type (§3.2)", contentType: formType, body: "grant_type=client_credentials&grant_type=client_credentials", status: 400},
		{name: "repeated scope", contentType: formType, body: "scope=a&scope=b", status: 400},
		{name: "repeated client_secret", contentType: formType, body: "client_secret=a&client_secret=a", status: 400},
		{name: "JSON body", contentType: "application/json", body: `{"grant_type":"client_credentials"}`, status: 400},
		{name: "no Content-Type", contentType: "", body: "grant_type=client_credentials", status: 400},
		{name: "multipart", contentType: "multipart/form-data; boundary=x", body: "--x--", status: 400},
		{name: "malformed Content-Type", contentType: formType + "; charset", body: "a=1", status: 400},
		{name: "bad percent-escape", contentType: formType, body: "grant_type=%zz", status: 400},
		{name: "semicolon separator", contentType: formType, body: "a=1;b=2", status: 400},
		{name: "body over 64 KiB", contentType: formType, body: atLimit + "a", status: 413},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			form, oerr := runParseForm(tc.contentType, tc.body)
			if tc.status != 0 {
				if oerr == nil {
					t.Fatalf("parseForm accepted %.60q (Content-Type %q), want status %d", tc.body, tc.contentType, tc.status)
				}
				if oerr.status != tc.status || oerr.Code != "invalid_request" {
					t.Fatalf("parseForm error: status %d code %q, want %d invalid_request", oerr.status, oerr.Code, tc.status)
				}
				return
			}
			if oerr != nil {
				t.Fatalf("parseForm refused %.60q (Content-Type %q): %v, want it parsed", tc.body, tc.contentType, oerr)
			}
			if !reflect.DeepEqual(form, tc.want) {
				t.Errorf("parseForm = %.200v, want %.200v", form, tc.want)
			}
		})
	}
}

func runParseForm(contentType, body string) (url.Values, *oauthError) {
	r := httptest.NewRequest(http.MethodPost, pathToken, strings.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	return parseForm(httptest.NewRecorder(), r)
}

// asciiFold is an independent reference for header-name matching: ASCII
// case folding and '_' treated as '-'.
func asciiFold(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c == '_':
			b[i] = '-'
		case 'A' <= c && c <= 'Z':
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// FuzzStripHeader: stripping never panics, leaves no variant of the name
// behind, and keeps every other header with its values.
func FuzzStripHeader(f *testing.F) {
	f.Add("X-Identity-Token", "x_identity_token", "X-IDENTITY-TOKEN", "Authorization")
	f.Add("Authorization", "authorization", "Authorisation", "X-Identity-Token")
	f.Add("X-Identity-Token", "X-Identity-Tokens", "X Identity Token", "")
	f.Add("", "", "a", "A")
	f.Add("X@", "x`", "x@", "X_")
	f.Fuzz(func(t *testing.T, canon, k1, k2, k3 string) {
		h := http.Header{}
		for i, k := range []string{k1, k2, k3} {
			h[k] = append(h[k], string(rune('1'+i)))
		}
		orig := h.Clone()
		stripHeader(h, canon)
		for k := range orig {
			match := asciiFold(k) == asciiFold(canon)
			_, kept := h[k]
			if match && kept {
				t.Fatalf("stripHeader(%q) left header %q behind", canon, k)
			}
			if !match && (!kept || !reflect.DeepEqual(h[k], orig[k])) {
				t.Fatalf("stripHeader(%q) removed or changed unrelated header %q: %q → %q", canon, k, orig[k], h[k])
			}
		}
		if len(h) > len(orig) {
			t.Fatalf("stripHeader added headers: %v", h)
		}
	})
}

// FuzzTokenForm: the token request form parser never panics and answers
// every input with either a form or an RFC 6749 §5.2 invalid_request (400,
// or 413 for an oversized body), never anything that would become a 5xx.
func FuzzTokenForm(f *testing.F) {
	for _, s := range []string{
		"grant_type=client_credentials",
		"grant_type=client_credentials&scope=orders%3Aread+orders%3Awrite&resource=https%3A%2F%2Fapi.example",
		"grant_type=client_credentials&grant_type=password",
		"resource=a&resource=b&audience=c&audience=d",
		"client_id=svc%3Aa%2Bb&client_secret=x",
		"%zz=1",
		"a=1;b=2",
		"&&&==&",
		"",
	} {
		f.Add(formType, []byte(s))
	}
	f.Add("application/json", []byte(`{"grant_type":"client_credentials"}`))
	f.Add(formType+"; charset=utf-8", []byte("a=%E2%82%AC"))
	f.Add(formType, []byte("pad="+strings.Repeat("a", maxFormBytes)))
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		r := httptest.NewRequest(http.MethodPost, pathToken, strings.NewReader(string(body)))
		r.Header.Set("Content-Type", contentType)
		form, oerr := parseForm(httptest.NewRecorder(), r)
		if (form == nil) == (oerr == nil) {
			t.Fatalf("parseForm returned form %v and error %v; want exactly one", form, oerr)
		}
		if oerr != nil {
			var e *oauthError
			if !errors.As(error(oerr), &e) || (e.status != http.StatusBadRequest && e.status != http.StatusRequestEntityTooLarge) || e.Code != "invalid_request" {
				t.Fatalf("parseForm error status %d code %q, want 400 or 413 invalid_request", oerr.status, oerr.Code)
			}
			return
		}
		if len(body) > maxFormBytes {
			t.Fatalf("parseForm accepted a %d-byte body, over the %d-byte limit", len(body), maxFormBytes)
		}
		for k, v := range form {
			if len(v) > 1 && k != "resource" && k != "audience" {
				t.Fatalf("parseForm accepted repeated parameter %q = %q (RFC 6749 §3.2)", k, v)
			}
		}
	})
}
