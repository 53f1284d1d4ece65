// Package clientstore owns Gatehouse's OAuth clients and what is stored
// with them:
//
//   - the client model and its validation, and secret generation and
//     hashing (secret hashes imported from Ory Hydra included);
//   - the Store interface: durable clients, key material and token
//     revocations, with conditional writes by revision;
//   - its implementations: BoltStore, one bbolt file for one process, and
//     EtcdStore, shared by the nodes of a cluster;
//   - the record codec both stores write, and the backup format, a bbolt
//     file whatever the backend, with Restore into any store; in that
//     format, the local snapshot an etcd node keeps so that it can start
//     while etcd is unreachable;
//   - the in-memory Cache the hot path reads clients from, and the Sync
//     that keeps it current with the store (through a watch on etcd);
//   - reading Ory Hydra's client exports for import, and RFC 7396 merge
//     patches.
//
// It knows nothing of HTTP, Caddy or token formats.
package clientstore
