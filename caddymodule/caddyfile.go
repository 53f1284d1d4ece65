package caddymodule

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
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
//		storage bolt [<path>]
//		issuer <url>
//		token_ttl <duration>
//		identity_ttl <duration>
//		signing_alg ES256|EdDSA|RS256|PS256
//		identity_cache_size <n>
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
			var backend string
			if !d.Args(&backend) {
				return d.ArgErr()
			}
			if backend != "bolt" {
				return d.Errf("unknown storage backend %q (supported: bolt)", backend)
			}
			a.Storage = &Storage{Backend: backend}
			if d.NextArg() {
				a.Storage.Path = d.Val()
			}
			if d.NextArg() {
				return d.ArgErr()
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
		default:
			return d.Errf("unrecognized subdirective %q", d.Val())
		}
	}
	return nil
}

// Interface guards.
var (
	_ caddyfile.Unmarshaler = (*App)(nil)
	_ caddyfile.Unmarshaler = (*Server)(nil)
	_ caddyfile.Unmarshaler = (*Protect)(nil)
)
