package caddymodule

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/gatehousehq/gatehouse/clientstore"
	"github.com/spf13/cobra"
)

// secretEnv names the variable token and introspect read the client
// secret from when --client-secret is not given.
const secretEnv = "GATEHOUSE_CLIENT_SECRET"

// credentialFlags are the client credentials of token and introspect.
func credentialFlags(cmd *cobra.Command) {
	cmd.Flags().String("client-id", "", "client_id (required)")
	cmd.Flags().String("client-secret", "", "client_secret (default: $"+secretEnv+")")
	cmd.Flags().String("auth-method", clientstore.AuthMethodBasic, "client_secret_basic or client_secret_post")
}

func credentials(cmd *cobra.Command) (id, secret, method string, err error) {
	id, _ = cmd.Flags().GetString("client-id")
	secret, _ = cmd.Flags().GetString("client-secret")
	method, _ = cmd.Flags().GetString("auth-method")
	if secret == "" {
		secret = os.Getenv(secretEnv)
	}
	switch {
	case id == "":
		return "", "", "", errors.New("--client-id is required")
	case secret == "":
		return "", "", "", errors.New("--client-secret (or " + secretEnv + ") is required")
	case method != clientstore.AuthMethodBasic && method != clientstore.AuthMethodPost:
		return "", "", "", fmt.Errorf("--auth-method: %s or %s", clientstore.AuthMethodBasic, clientstore.AuthMethodPost)
	}
	return id, secret, method, nil
}

func tokenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token --client-id ID [--client-secret SECRET] [--scope …] [--audience …] [--token-url URL]",
		Short: "Fetch an access token with the client_credentials grant",
		Long: `Asks the token endpoint for an access token (RFC 6749 §4.4) and prints
it alone, ready for TOKEN=$(caddy gatehouse token …); --json prints the
whole token response. The endpoint is --token-url, else the running
gatehouse app's issuer + /oauth2/token.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			id, secret, method, err := credentials(cmd)
			if err != nil {
				return err
			}
			endpoint, _ := cmd.Flags().GetString("token-url")
			if endpoint == "" {
				if endpoint, err = issuerURL(cmd, pathToken); err != nil {
					return err
				}
			}
			form := url.Values{"grant_type": {clientstore.GrantClientCredentials}}
			if s, _ := cmd.Flags().GetString("scope"); s != "" {
				form.Set("scope", s)
			}
			if aud, _ := cmd.Flags().GetStringArray("audience"); len(aud) > 0 {
				form["audience"] = aud // Hydra's parameter: any string, not only URIs as RFC 8707 resource
			}
			b, err := postForm(endpoint, form, id, secret, method, nil)
			if err != nil {
				return err
			}
			if jsonOutput(cmd) {
				return printRaw(cmd, b)
			}
			var tok tokenResponse
			if err := json.Unmarshal(b, &tok); err != nil || tok.AccessToken == "" {
				return fmt.Errorf("unexpected token response: %.200s", b)
			}
			fmt.Fprintln(cmd.OutOrStdout(), tok.AccessToken)
			fmt.Fprintf(cmd.ErrOrStderr(), "%s token, expires in %ds, scope %q\n", tok.TokenType, tok.ExpiresIn, tok.Scope)
			return nil
		},
	}
	credentialFlags(cmd)
	cmd.Flags().String("scope", "", "Requested scopes, space-separated (default: all of the client's)")
	cmd.Flags().StringArray("audience", nil, "Requested audience (repeatable; default: all of the client's)")
	cmd.Flags().String("token-url", "", "Token endpoint (default: the running issuer + "+pathToken+")")
	return cmd
}

func introspectCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "introspect TOKEN|- --client-id ID [--client-secret SECRET]",
		Short: "Ask the authorization server about a token (RFC 7662)",
		Long: `Sends the token (- reads it from stdin) to the introspection endpoint,
authenticated as a client allowed to introspect, and prints the answer.
An inactive token is an answer, not a failure: it prints active false
and exits 0. The endpoint is --introspect-url, else the running gatehouse
app's issuer + /oauth2/introspect.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, secret, method, err := credentials(cmd)
			if err != nil {
				return err
			}
			token := args[0]
			if token == "-" {
				b, err := readInput(cmd, "-")
				if err != nil {
					return err
				}
				token = strings.TrimSpace(string(b))
			}
			endpoint, _ := cmd.Flags().GetString("introspect-url")
			if endpoint == "" {
				if endpoint, err = issuerURL(cmd, pathIntrospect); err != nil {
					return err
				}
			}
			b, err := postForm(endpoint, url.Values{"token": {token}}, id, secret, method, nil)
			if err != nil {
				return err
			}
			if jsonOutput(cmd) {
				return printRaw(cmd, b)
			}
			var res map[string]any
			dec := json.NewDecoder(bytes.NewReader(b))
			dec.UseNumber()
			if err := dec.Decode(&res); err != nil {
				return fmt.Errorf("unexpected introspection response: %.200s", b)
			}
			return printFields(cmd, res, "")
		},
	}
	credentialFlags(cmd)
	cmd.Flags().String("introspect-url", "", "Introspection endpoint (default: the running issuer + "+pathIntrospect+")")
	return cmd
}

// issuerURL derives an endpoint from the running gatehouse app's issuer,
// read from the admin API's config.
func issuerURL(cmd *cobra.Command, path string) (string, error) {
	api, err := newAdminClient(cmd)
	if err != nil {
		return "", err
	}
	_, b, err := api.call(http.MethodGet, "/config/apps/gatehouse/issuer", nil, nil)
	if err != nil {
		return "", fmt.Errorf("finding the issuer (or pass the endpoint URL): %w", err)
	}
	var iss string
	if err := json.Unmarshal(b, &iss); err != nil || iss == "" {
		return "", errors.New("the running config has no gatehouse issuer; pass the endpoint URL")
	}
	return strings.TrimSuffix(iss, "/") + path, nil
}

// postForm sends an authenticated form to an OAuth endpoint and returns
// the body of a 2xx answer; otherwise an error with the RFC 6749 §5.2
// error and description.
func postForm(endpoint string, form url.Values, id, secret, method string, client *http.Client) ([]byte, error) {
	if client == nil {
		client = &http.Client{Timeout: adminTimeout}
	}
	if method == clientstore.AuthMethodPost {
		form.Set("client_id", id)
		form.Set("client_secret", secret)
	}
	req, err := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if method == clientstore.AuthMethodBasic {
		// RFC 6749 §2.3.1: form-encode both before Basic.
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		var oe oauthError
		if json.Unmarshal(b, &oe) == nil && oe.Code != "" {
			return nil, fmt.Errorf("%s: HTTP %d: %s: %s", endpoint, resp.StatusCode, oe.Code, oe.Description)
		}
		return nil, fmt.Errorf("%s: HTTP %d: %.200s", endpoint, resp.StatusCode, b)
	}
	return b, nil
}
