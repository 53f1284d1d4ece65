package caddymodule

import (
	"math"
	"net/url"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"
	"github.com/gatehousehq/gatehouse/introspection"
	"github.com/gatehousehq/gatehouse/introspection/remote"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("gatehouse", parseGlobalOption)
	httpcaddyfile.RegisterHandlerDirective("gatehouse_server", parseServer)
	httpcaddyfile.RegisterHandlerDirective("gatehouse_protect", parseProtect)
	httpcaddyfile.RegisterDirectiveOrder("gatehouse_protect", httpcaddyfile.Before, "basic_auth")
	httpcaddyfile.RegisterDirectiveOrder("gatehouse_server", httpcaddyfile.Before, "reverse_proxy")
}

// parseGlobalOption parses the `gatehouse` global option:
//
//	gatehouse {
//		storage bolt [<path>] | storage etcd { … } (see unmarshalStorage)
//		issuer <url>
//		token_ttl <duration>
//		identity_ttl <duration>
//		signing_alg ES256|EdDSA|RS256|PS256
//		identity_cache_size <n>
//		token_concurrency <n>
//		token_queue <n>
//		access_token_strategy opaque|jwt
//		scopes_supported <scope...>
//	}
func parseGlobalOption(d *caddyfile.Dispenser, _ any) (any, error) {
	app := new(App)
	if err := app.UnmarshalCaddyfile(d); err != nil {
		return nil, err
	}
	return httpcaddyfile.App{Name: "gatehouse", Value: caddyconfig.JSON(app, nil)}, nil
}

// UnmarshalCaddyfile sets up the app from Caddyfile tokens.
func (a *App) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // option name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "storage":
			if err := a.unmarshalStorage(d); err != nil {
				return err
			}
		case "issuer":
			if err := oneArg(d, &a.Issuer); err != nil {
				return err
			}
			if err := validateIssuer(a.Issuer); err != nil {
				return d.Errf("issuer %q: %v", a.Issuer, err)
			}
		case "token_ttl", "identity_ttl":
			name := d.Val()
			var s string
			if err := oneArg(d, &s); err != nil {
				return err
			}
			dur, err := caddy.ParseDuration(s)
			if err != nil || dur <= 0 {
				return d.Errf("%s: invalid duration %q", name, s)
			}
			if name == "token_ttl" {
				a.TokenTTL = caddy.Duration(dur)
			} else {
				a.IdentityTTL = caddy.Duration(dur)
			}
		case "signing_alg":
			if err := oneArg(d, &a.SigningAlg); err != nil {
				return err
			}
		case "identity_cache_size":
			var s string
			if err := oneArg(d, &s); err != nil {
				return err
			}
			n, err := strconv.Atoi(s)
			if err != nil || n <= 0 {
				return d.Errf("identity_cache_size: want a positive number, got %q", s)
			}
			a.IdentityCacheSize = n
		case "token_concurrency", "token_queue":
			name := d.Val()
			var s string
			if err := oneArg(d, &s); err != nil {
				return err
			}
			n, err := strconv.Atoi(s)
			if err != nil || n <= 0 {
				return d.Errf("%s: want a positive number, got %q", name, s)
			}
			if name == "token_concurrency" {
				a.TokenConcurrency = n
			} else {
				a.TokenQueue = n
			}
		case "access_token_strategy":
			if err := oneArg(d, &a.AccessTokenStrategy); err != nil {
				return err
			}
			if a.AccessTokenStrategy != "opaque" && a.AccessTokenStrategy != "jwt" {
				return d.Errf("access_token_strategy: want opaque or jwt, got %q", a.AccessTokenStrategy)
			}
		case "scopes_supported":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			a.ScopesSupported = append(a.ScopesSupported, args...)
		default:
			return d.Errf("unrecognized subdirective %q", d.Val())
		}
	}
	return nil
}

// unmarshalStorage parses, the dispenser on the storage token:
//
//	storage bolt [<path>]
//	storage etcd {
//		endpoints <url...>
//		prefix <prefix>
//		username <name>
//		password <password>
//		snapshot <path>|off
//		tls {
//			ca <pem file>
//			cert <pem file>
//			key <pem file>
//		}
//		dial_timeout <duration>
//		request_timeout <duration>
//	}
//
// `tls ca <file> cert <file> key <file>` on one line works too (Caddyfile
// blocks cannot open and close on one line).
func (a *App) unmarshalStorage(d *caddyfile.Dispenser) error {
	var backend string
	if !d.Args(&backend) {
		return d.ArgErr()
	}
	switch backend {
	case "bolt":
		a.Storage = &Storage{Backend: backend}
		if d.NextArg() {
			a.Storage.Path = d.Val()
		}
		if d.NextArg() {
			return d.ArgErr()
		}
		return nil
	case "etcd":
	default:
		return d.Errf("unknown storage backend %q (supported: bolt, etcd)", backend)
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	e := new(EtcdStorage)
	a.Storage = &Storage{Backend: backend, Etcd: e}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		name := d.Val()
		switch name {
		case "endpoints":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			for _, ep := range args {
				if !strings.Contains(ep, "{") {
					if u, err := url.Parse(ep); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
						return d.Errf("storage etcd: endpoints: %q is not an http(s)://host:port URL", ep)
					}
				}
			}
			e.Endpoints = append(e.Endpoints, args...)
		case "prefix":
			if err := oneArg(d, &e.Prefix); err != nil {
				return err
			}
			if !strings.HasPrefix(e.Prefix, "/") && !strings.HasPrefix(e.Prefix, "{") {
				return d.Errf("storage etcd: prefix %q must start with /", e.Prefix)
			}
		case "username":
			if err := oneArg(d, &e.Username); err != nil {
				return err
			}
		case "password":
			if err := oneArg(d, &e.Password); err != nil {
				return err
			}
		case "snapshot":
			if err := oneArg(d, &e.Snapshot); err != nil {
				return err
			}
		case "dial_timeout", "request_timeout":
			var v string
			if err := oneArg(d, &v); err != nil {
				return err
			}
			dur, err := caddy.ParseDuration(v)
			if err != nil || dur <= 0 {
				return d.Errf("storage etcd: %s: want a positive duration, got %q", name, v)
			}
			if name == "dial_timeout" {
				e.DialTimeout = caddy.Duration(dur)
			} else {
				e.RequestTimeout = caddy.Duration(dur)
			}
		case "tls":
			if e.TLS != nil {
				return d.Err("storage etcd: tls given twice")
			}
			e.TLS = new(EtcdTLS)
			set := func(k, v string) error {
				switch k {
				case "ca":
					e.TLS.CA = v
				case "cert":
					e.TLS.Cert = v
				case "key":
					e.TLS.Key = v
				default:
					return d.Errf("storage etcd: tls: unrecognized option %q (want ca, cert, key)", k)
				}
				return nil
			}
			args := d.RemainingArgs()
			if len(args)%2 != 0 {
				return d.Errf("storage etcd: tls: want pairs such as ca <file> cert <file> key <file>")
			}
			for i := 0; i < len(args); i += 2 {
				if err := set(args[i], args[i+1]); err != nil {
					return err
				}
			}
			for n := d.Nesting(); d.NextBlock(n); {
				k := d.Val()
				var v string
				if err := oneArg(d, &v); err != nil {
					return err
				}
				if err := set(k, v); err != nil {
					return err
				}
			}
			if (e.TLS.Cert == "") != (e.TLS.Key == "") {
				return d.Err("storage etcd: tls: cert and key go together")
			}
		default:
			return d.Errf("storage etcd: unrecognized option %q", name)
		}
	}
	if len(e.Endpoints) == 0 {
		return d.Err("storage etcd: endpoints are required")
	}
	return nil
}

func oneArg(d *caddyfile.Dispenser, dst *string) error {
	if !d.Args(dst) {
		return d.ArgErr()
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

// parseServer parses `gatehouse_server`, which takes no arguments.
func parseServer(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	s := new(Server)
	return s, s.UnmarshalCaddyfile(h.Dispenser)
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens.
func (s *Server) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		return d.Errf("unrecognized subdirective %q", d.Val())
	}
	return nil
}

// parseProtect parses:
//
//	gatehouse_protect {
//		scope <scope...>     # repeatable; all listed scopes are required
//		audience <aud>
//		header <name>
//		optional             # let anonymous requests through
//		introspect <url> {   # also admit tokens of another authorization server (RFC 7662)
//			client_id <id>
//			client_secret <secret>
//			auth_method client_secret_basic|client_secret_post
//			bearer <token>   # instead of client_id/client_secret
//			token_type_hint <hint>
//			cache_ttl <duration>
//			negative_ttl <duration>
//			timeout <duration>
//			trusted_issuers <url...>
//			cache_entries <n>
//			cache_bytes <size>
//			breaker_failures <n>
//			breaker_cooldown <duration>
//			max_concurrent <n>|off      # calls in flight to the server (half for one address)
//			queue_size <n>              # calls waiting for one of them
//			queue_timeout <duration>    # how long they wait
//			address_miss_rate <n>|off   # unknown tokens per second per client address
//			address_miss_burst <n>
//		}
//		enrich local_wins|remote_wins|off
//	}
func parseProtect(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	p := new(Protect)
	return p, p.UnmarshalCaddyfile(h.Dispenser)
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens.
func (p *Protect) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "scope":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			p.Scopes = append(p.Scopes, args...)
		case "audience":
			if err := oneArg(d, &p.Audience); err != nil {
				return err
			}
		case "header":
			if err := oneArg(d, &p.Header); err != nil {
				return err
			}
			if !validHeaderName(p.Header) {
				return d.Errf("invalid header name %q", p.Header)
			}
		case "optional":
			if d.NextArg() {
				return d.ArgErr()
			}
			p.Optional = true
		case "introspect":
			if p.Introspect != nil {
				return d.Err("introspect given twice")
			}
			p.Introspect = new(Introspect)
			if err := p.Introspect.unmarshalCaddyfile(d); err != nil {
				return err
			}
		case "enrich":
			if err := oneArg(d, &p.Enrich); err != nil {
				return err
			}
			if !introspection.Enrichment(p.Enrich).Valid() {
				return d.Errf("enrich: want local_wins, remote_wins or off, got %q", p.Enrich)
			}
		default:
			return d.Errf("unrecognized subdirective %q", d.Val())
		}
	}
	if p.Enrich != "" && p.Introspect == nil {
		return d.Err("enrich applies to introspected tokens only: add introspect")
	}
	return nil
}

// unmarshalCaddyfile parses `introspect <url> { … }`, the dispenser on
// the introspect token. Errors name the offending line.
func (in *Introspect) unmarshalCaddyfile(d *caddyfile.Dispenser) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	in.URL = d.Val()
	if !strings.Contains(in.URL, "{") { // placeholders resolve at provisioning
		if u, err := url.Parse(in.URL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
			return d.Errf("introspect: %q is not an absolute http(s) URL without user info", remote.Redact(in.URL))
		}
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		name := d.Val()
		switch name {
		case "client_id", "client_secret", "bearer":
			var v string
			if err := oneArg(d, &v); err != nil {
				return err
			}
			switch {
			case name == "bearer" && (in.ClientID != "" || in.ClientSecret != ""),
				name != "bearer" && in.Bearer != "":
				return d.Errf("introspect: use either client_id/client_secret or bearer, not both")
			case name == "client_id":
				in.ClientID = v
			case name == "client_secret":
				in.ClientSecret = v
			default:
				in.Bearer = v
			}
		case "auth_method":
			if err := oneArg(d, &in.AuthMethod); err != nil {
				return err
			}
			if in.AuthMethod != remote.AuthClientSecretBasic && in.AuthMethod != remote.AuthClientSecretPost {
				return d.Errf("introspect: auth_method: want %s or %s, got %q", remote.AuthClientSecretBasic, remote.AuthClientSecretPost, in.AuthMethod)
			}
		case "token_type_hint":
			if err := oneArg(d, &in.TokenTypeHint); err != nil {
				return err
			}
		case "cache_ttl", "negative_ttl", "timeout", "breaker_cooldown", "queue_timeout":
			var s string
			if err := oneArg(d, &s); err != nil {
				return err
			}
			dur, err := caddy.ParseDuration(s)
			if err != nil || dur <= 0 {
				return d.Errf("introspect: %s: want a positive duration, got %q", name, s)
			}
			switch name {
			case "cache_ttl":
				in.CacheTTL = caddy.Duration(dur)
			case "negative_ttl":
				in.NegativeTTL = caddy.Duration(dur)
			case "timeout":
				in.Timeout = caddy.Duration(dur)
			case "queue_timeout":
				in.QueueTimeout = caddy.Duration(dur)
			default:
				in.BreakerCooldown = caddy.Duration(dur)
			}
		case "trusted_issuers":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			in.TrustedIssuers = append(in.TrustedIssuers, args...)
		case "cache_entries", "breaker_failures", "max_concurrent", "queue_size", "address_miss_burst":
			var s string
			if err := oneArg(d, &s); err != nil {
				return err
			}
			n, err := strconv.Atoi(s)
			switch {
			case s == "off" && name == "max_concurrent":
				n = -1
			case err != nil || n <= 0:
				return d.Errf("introspect: %s: want a positive number, got %q", name, s)
			}
			switch name {
			case "cache_entries":
				in.CacheEntries = n
			case "breaker_failures":
				in.BreakerFailures = n
			case "max_concurrent":
				in.MaxConcurrent = n
			case "queue_size":
				in.QueueSize = n
			default:
				in.AddressMissBurst = n
			}
		case "address_miss_rate":
			var s string
			if err := oneArg(d, &s); err != nil {
				return err
			}
			if s == "off" {
				in.AddressMissRate = -1
				break
			}
			r, err := strconv.ParseFloat(s, 64)
			if err != nil || !(r > 0) || math.IsInf(r, 0) {
				return d.Errf("introspect: address_miss_rate: want a positive number of misses per second, or off, got %q", s)
			}
			in.AddressMissRate = r
		case "cache_bytes":
			var s string
			if err := oneArg(d, &s); err != nil {
				return err
			}
			n, err := humanize.ParseBytes(s)
			if err != nil || n == 0 || n > math.MaxInt64 {
				return d.Errf("introspect: cache_bytes: want a size such as 16MiB, got %q", s)
			}
			in.CacheBytes = int64(n)
		default:
			return d.Errf("introspect: unrecognized option %q", name)
		}
	}
	if in.ClientSecret != "" && in.ClientID == "" {
		return d.Err("introspect: client_secret without client_id")
	}
	return nil
}

// Interface guards.
var (
	_ caddyfile.Unmarshaler = (*App)(nil)
	_ caddyfile.Unmarshaler = (*Server)(nil)
	_ caddyfile.Unmarshaler = (*Protect)(nil)
)
