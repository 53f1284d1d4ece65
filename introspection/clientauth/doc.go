// Package clientauth owns client authentication at the token,
// introspection and revocation endpoints: reading a request's credentials
// (client_secret_basic, client_secret_post or a private_key_jwt assertion,
// exactly one, never in the query string), checking a secret against the
// client cache or an RFC 7523 assertion against the client's keys, inline
// or fetched from its jwks_uri, with the replay guard of introspection, and
// the per-address and per-client limits that slow down guessing. It returns
// errors and never writes a response: HTTP statuses are the caller's. It
// knows nothing of Caddy.
package clientauth
