// Package introspection owns Gatehouse's access tokens and the identities
// made from them: the Authority that mints and checks tokens (sealed opaque
// ones and RFC 9068 JWTs) in memory only, the key rings that seal and sign
// them with the JWKS that publishes the public keys, the Revocations (revoked
// tokens, and the replay guard of one-time ids), the RFC 7662 Result of a
// check, and per protected route an Authorizer that applies the route's
// policy and hands out identity JWTs from its identity cache, enriching a
// token another server vouched for (an Introspector) with the local client
// record. It never authenticates clients (package clientauth), never calls
// another server itself (package remote), and knows nothing of Caddy.
package introspection
