package clientstore

// The stored forms that BoltStore and EtcdStore share, and with them every
// backup: a client is a JSON record, a revocation the Unix second until
// which it holds, as 8 big-endian bytes.

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"
)

// record is a client as persisted: its JSON form plus the fields that
// never leave the store.
type record struct {
	*Client
	SecretHash              string     `json:"secret_hash,omitempty"`
	PreviousSecretHash      string     `json:"previous_secret_hash,omitempty"`
	PreviousSecretExpiresAt *time.Time `json:"previous_secret_expires_at,omitempty"`
	Generation              uint64     `json:"generation"`
	Revision                uint64     `json:"revision"`
}

func encodeClient(c *Client) ([]byte, error) {
	r := record{Client: c, SecretHash: c.SecretHash, Generation: c.Generation, Revision: c.Revision}
	if c.PreviousSecretHash != "" {
		r.PreviousSecretHash = c.PreviousSecretHash
		exp := c.PreviousSecretExpiresAt.UTC()
		r.PreviousSecretExpiresAt = &exp
	}
	return json.Marshal(r)
}

func decodeClient(b []byte) (*Client, error) {
	c := new(Client)
	r := record{Client: c}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("decoding stored client: %w", err)
	}
	c.SecretHash = r.SecretHash
	c.Generation = r.Generation
	c.Revision = r.Revision
	if r.PreviousSecretHash != "" && r.PreviousSecretExpiresAt != nil {
		c.PreviousSecretHash = r.PreviousSecretHash
		c.PreviousSecretExpiresAt = *r.PreviousSecretExpiresAt
	}
	// Only valid clients are ever written; a record that is not one was
	// changed behind Gatehouse's back and is refused, not served.
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("stored client %q: %w", c.ID, err)
	}
	return c, nil
}

// checkRevision is nil if rev is 0 (any revision will do) or the stored
// record's revision, else ErrRevisionMismatch.
func checkRevision(stored []byte, rev uint64) error {
	if rev == 0 {
		return nil
	}
	cur, err := storedRevision(stored)
	if err != nil {
		return err
	}
	if cur != rev {
		return ErrRevisionMismatch
	}
	return nil
}

// storedRevision reads only the revision of a stored record.
func storedRevision(v []byte) (uint64, error) {
	var r struct {
		Revision uint64 `json:"revision"`
	}
	if err := json.Unmarshal(v, &r); err != nil {
		return 0, fmt.Errorf("decoding stored client: %w", err)
	}
	return r.Revision, nil
}

func encodeUntil(until time.Time) []byte {
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], uint64(until.Unix()))
	return v[:]
}

// decodeUntil reads a revocation's expiry; anything else is not ours.
func decodeUntil(v []byte) (time.Time, bool) {
	if len(v) != 8 {
		return time.Time{}, false
	}
	return time.Unix(int64(binary.BigEndian.Uint64(v)), 0), true
}
