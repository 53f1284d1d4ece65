package clientstore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// MergePatch applies an RFC 7396 JSON merge patch to the JSON document doc
// and returns the result: members of a patch object replace those of the
// target, recursively for objects; a null member removes the target's
// member; a patch that is not an object replaces the whole document.
// Numbers pass through exactly (no float64 rounding).
func MergePatch(doc, patch []byte) ([]byte, error) {
	target, err := decodeValue(doc)
	if err != nil {
		return nil, fmt.Errorf("document: %w", err)
	}
	p, err := decodeValue(patch)
	if err != nil {
		return nil, fmt.Errorf("merge patch: %w", err)
	}
	return json.Marshal(mergeValue(target, p))
}

func decodeValue(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if dec.More() {
		return nil, errors.New("invalid JSON: trailing data after the value")
	}
	return v, nil
}

// mergeValue is RFC 7396 §2's MergePatch(Target, Patch). It may reuse
// parts of patch in the result; both come from fresh decodes.
func mergeValue(target, patch any) any {
	p, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	t, ok := target.(map[string]any)
	if !ok {
		t = map[string]any{}
	}
	for name, value := range p {
		if value == nil {
			delete(t, name)
			continue
		}
		t[name] = mergeValue(t[name], value)
	}
	return t
}
