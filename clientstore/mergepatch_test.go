package clientstore

import (
	"bytes"
	"encoding/json"
	"testing"
)

// jsonEqual compares two JSON documents by value, numbers exactly.
func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	va, err := decodeValue(a)
	if err != nil {
		t.Fatalf("%q: %v", a, err)
	}
	vb, err := decodeValue(b)
	if err != nil {
		t.Fatalf("%q: %v", b, err)
	}
	ca, _ := json.Marshal(va)
	cb, _ := json.Marshal(vb)
	return bytes.Equal(ca, cb)
}

// RFC 7396 Appendix A: every example of the RFC, plus exact numbers.
func TestMergePatchRFC7396AppendixA(t *testing.T) {
	tests := []struct{ target, patch, want string }{
		{`{"a":"b"}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"b"}`, `{"b":"c"}`, `{"a":"b","b":"c"}`},
		{`{"a":"b"}`, `{"a":null}`, `{}`},
		{`{"a":"b","b":"c"}`, `{"a":null}`, `{"b":"c"}`},
		{`{"a":["b"]}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"c"}`, `{"a":["b"]}`, `{"a":["b"]}`},
		{`{"a":{"b":"c"}}`, `{"a":{"b":"d","c":null}}`, `{"a":{"b":"d"}}`},
		{`{"a":[{"b":"c"}]}`, `{"a":[1]}`, `{"a":[1]}`},
		{`["a","b"]`, `["c","d"]`, `["c","d"]`},
		{`{"a":"b"}`, `["c"]`, `["c"]`},
		{`{"a":"foo"}`, `null`, `null`},
		{`{"a":"foo"}`, `"bar"`, `"bar"`},
		{`{"e":null}`, `{"a":1}`, `{"e":null,"a":1}`},
		{`[1,2]`, `{"a":"b","c":null}`, `{"a":"b"}`},
		{`{}`, `{"a":{"bb":{"ccc":null}}}`, `{"a":{"bb":{}}}`},
		// Not in the RFC: numbers stay exact, nested objects merge.
		{`{"n":12345678901234567890,"m":{"x":1,"y":2}}`, `{"m":{"y":null,"z":0.1}}`, `{"n":12345678901234567890,"m":{"x":1,"z":0.1}}`},
	}
	for _, tt := range tests {
		got, err := MergePatch([]byte(tt.target), []byte(tt.patch))
		if err != nil {
			t.Errorf("MergePatch(%s, %s) = %v", tt.target, tt.patch, err)
			continue
		}
		if !jsonEqual(t, got, []byte(tt.want)) {
			t.Errorf("MergePatch(%s, %s) = %s, want %s", tt.target, tt.patch, got, tt.want)
		}
	}
}

func TestMergePatchInvalid(t *testing.T) {
	for _, tt := range []struct{ target, patch string }{
		{`{}`, ``},
		{`{}`, `{"a":`},
		{`{}`, `{"a":1} {"b":2}`},
		{`{`, `{}`},
	} {
		if got, err := MergePatch([]byte(tt.target), []byte(tt.patch)); err == nil {
			t.Errorf("MergePatch(%q, %q) = %s, nil error; want an error", tt.target, tt.patch, got)
		}
	}
}

// FuzzMergePatch: the patch is untrusted admin input. Applying it never
// panics, and applying it twice changes nothing more (RFC 7396 patches are
// idempotent).
func FuzzMergePatch(f *testing.F) {
	f.Add(`{"client_id":"a","metadata":{"tier":"gold","realm":{"id":"r"}}}`, `{"metadata":{"tier":null,"realm":{"id":"s"}}}`)
	f.Add(`{"a":[1,2]}`, `{"a":{"b":null}}`)
	f.Add(`{}`, `null`)
	f.Add(`[]`, `{"a":{"b":{"c":null}}}`)
	f.Add(`{"n":1e400}`, `{"m":-0}`)
	f.Fuzz(func(t *testing.T, target, patch string) {
		once, err := MergePatch([]byte(target), []byte(patch))
		if err != nil {
			return
		}
		twice, err := MergePatch(once, []byte(patch))
		if err != nil {
			t.Fatalf("re-applying %q to %s: %v", patch, once, err)
		}
		if !bytes.Equal(once, twice) {
			t.Fatalf("not idempotent: %s then %s", once, twice)
		}
	})
}
