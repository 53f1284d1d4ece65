package introspection

import (
	"encoding/json"
	"errors"
)

// Audience is a JWT or introspection `aud` (RFC 7519 §4.1.3): it decodes
// from a string or an array, and marshals as a single string when it has
// one entry, as most JWT libraries expect, and as an array otherwise.
type Audience []string

func (a Audience) MarshalJSON() ([]byte, error) {
	if len(a) == 1 {
		return json.Marshal(a[0])
	}
	return json.Marshal([]string(a))
}

// UnmarshalJSON accepts either form.
func (a *Audience) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*a = Audience{s}
		return nil
	}
	var l []string
	if err := json.Unmarshal(b, &l); err != nil {
		return errors.New("aud must be a string or an array of strings")
	}
	*a = l
	return nil
}
