package introspection

import (
	"errors"
	"strings"
	"testing"
)

// RFC 6750 §2.1: credentials = "Bearer" 1*SP b64token, where
// b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=";
// the scheme is case-insensitive (RFC 9110 §11.1).
func TestParseBearer(t *testing.T) {
	maxTok := strings.Repeat("a", MaxTokenLength)
	tests := []struct {
		name    string
		header  string
		want    string
		wantErr error
	}{
		{"canonical", "Bearer abc", "abc", nil},
		{"lower-case scheme", "bearer abc", "abc", nil},
		{"upper-case scheme", "BEARER abc", "abc", nil},
		{"mixed-case scheme", "bEaReR abc", "abc", nil},
		{"several spaces", "Bearer    abc", "abc", nil},
		{"one padding", "Bearer abc=", "abc=", nil},
		{"two paddings", "Bearer abc==", "abc==", nil},
		{"every b64token character", "Bearer AZaz09-._~+/", "AZaz09-._~+/", nil},
		{"single character", "Bearer a", "a", nil},
		{"Gatehouse token", "Bearer gat_AQID-_x", "gat_AQID-_x", nil},
		{"exactly MaxTokenLength", "Bearer " + maxTok, maxTok, nil},

		// RFC 6750 §3: no credentials at all.
		{"empty", "", "", ErrNoCredentials},

		// RFC 6750 §3.1 invalid_token / invalid_request.
		{"Basic scheme", "Basic xyz", "", ErrBadCredentials},
		{"Bearer-like scheme", "Bearers abc", "", ErrBadCredentials},
		{"scheme prefix", "Bear abc", "", ErrBadCredentials},
		{"scheme only", "Bearer", "", ErrBadCredentials},
		{"scheme and space", "Bearer ", "", ErrBadCredentials},
		{"scheme and spaces", "Bearer    ", "", ErrBadCredentials},
		{"no space", "Bearerabc", "", ErrBadCredentials},
		{"two tokens", "Bearer a b", "", ErrBadCredentials},
		{"padding inside", "Bearer a=b", "", ErrBadCredentials},
		{"padding only", "Bearer ==", "", ErrBadCredentials},
		{"NUL", "Bearer \x00", "", ErrBadCredentials},
		{"NUL after token", "Bearer abc\x00", "", ErrBadCredentials},
		{"tab after scheme", "Bearer\tabc", "", ErrBadCredentials},
		{"tab before token", "Bearer \tabc", "", ErrBadCredentials},
		{"trailing tab", "Bearer abc\t", "", ErrBadCredentials},
		{"trailing space", "Bearer abc ", "", ErrBadCredentials},
		{"leading space", " Bearer abc", "", ErrBadCredentials},
		{"CRLF injection", "Bearer abc\r\nX-Identity-Token: forged", "", ErrBadCredentials},
		{"comma", "Bearer abc,def", "", ErrBadCredentials},
		{"quoted", `Bearer "abc"`, "", ErrBadCredentials},
		{"non-ASCII", "Bearer äbc", "", ErrBadCredentials},
		{"non-ASCII scheme", "Beärer abc", "", ErrBadCredentials},
		{"over MaxTokenLength", "Bearer " + maxTok + "a", "", ErrBadCredentials},
		{"far over MaxTokenLength", "Bearer " + strings.Repeat("a", 1<<20), "", ErrBadCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseBearer(tt.header)
			if !errors.Is(err, tt.wantErr) || got != tt.want {
				t.Errorf("ParseBearer(%.40q) = %.40q, %v; want %.40q, %v", tt.header, got, err, tt.want, tt.wantErr)
			}
		})
	}
}
