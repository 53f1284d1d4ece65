// Package caddymodule is Gatehouse's Caddy glue. It owns:
//
//   - the `gatehouse` app: the client store (bbolt or etcd, shared across
//     config reloads), the keys and the token authority, and Gatehouse's
//     Prometheus metrics;
//   - the `gatehouse_server` HTTP handler: the OAuth 2.0 authorization
//     server endpoints (token, introspection, revocation, JWKS and
//     RFC 8414 metadata);
//   - the `gatehouse_protect` HTTP handler: admits requests with a valid
//     access token (Gatehouse's own, or another server's through RFC 7662
//     introspection) and hands the backend a signed identity JWT;
//   - the admin API, admin.api.gatehouse, under /gatehouse/ on Caddy's
//     admin endpoint: client management, import from Ory Hydra, backup and
//     restore, key rotation and health;
//   - the `caddy gatehouse` command, which manages a running Gatehouse
//     through that admin API and fetches and introspects tokens;
//   - the Caddyfile syntax: the `gatehouse` global option and the
//     `gatehouse_server` and `gatehouse_protect` directives.
//
// The logic lives in clientstore and introspection; this package wires it
// into Caddy.
package caddymodule
