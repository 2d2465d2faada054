// Interoperability with a real OAuth 2.0 server, github.com/ory/fosite.

package oauth_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/storage"
	"golang.org/x/crypto/bcrypt"

	"github.com/credfsm/credfsm/oauth"
	"github.com/credfsm/credfsm/states"
)

// The client id and secret carry characters that RFC 6749 section 2.3.1
// requires to be form-encoded inside HTTP Basic credentials, so the test
// also proves both sides agree on that encoding.
const (
	fositeClientID = "credfsm:cli"
	fositeSecret   = "s3cr3t/+&="
)

// fositeServer runs a real OAuth 2.0 authorization server in-process: fosite
// with its memory store, HMAC-signed opaque tokens, the refresh-token grant,
// and the resource-owner password grant (used only to obtain the first
// token set, since it needs no browser).
func fositeServer(t *testing.T) *httptest.Server {
	t.Helper()
	config := &fosite.Config{
		GlobalSecret:         []byte("0123456789abcdef0123456789abcdef"),
		AccessTokenLifespan:  time.Hour,
		RefreshTokenLifespan: 24 * time.Hour,
	}
	// A cheap hash: the default cost makes every client authentication take
	// tens of milliseconds, more under the race detector.
	hash, err := bcrypt.GenerateFromPassword([]byte(fositeSecret), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	store := storage.NewMemoryStore()
	store.Clients[fositeClientID] = &fosite.DefaultClient{
		ID:         fositeClientID,
		Secret:     hash,
		GrantTypes: []string{"password", "refresh_token"},
		Scopes:     []string{"offline", "profile"},
	}
	store.Users["alice"] = storage.MemoryUserRelation{Username: "alice", Password: "correct horse"}

	provider := compose.Compose(config, store, compose.NewOAuth2HMACStrategy(config),
		compose.OAuth2ResourceOwnerPasswordCredentialsFactory,
		compose.OAuth2RefreshTokenGrantFactory,
	)

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		ar, err := provider.NewAccessRequest(ctx, r, &fosite.DefaultSession{})
		if err != nil {
			provider.WriteAccessError(ctx, w, ar, err)
			return
		}
		// This server consents to everything the client may ask for;
		// fosite issues refresh tokens only for the offline scope.
		for _, s := range ar.GetRequestedScopes() {
			ar.GrantScope(s)
		}
		resp, err := provider.NewAccessResponse(ctx, ar)
		if err != nil {
			provider.WriteAccessError(ctx, w, ar, err)
			return
		}
		provider.WriteAccessResponse(ctx, w, ar, resp)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// fositeLogin obtains a first token set from the server with the password
// grant and returns its refresh token.
func fositeLogin(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	form := url.Values{
		"grant_type": {"password"},
		"username":   {"alice"},
		"password":   {"correct horse"},
		"scope":      {"offline profile"},
	}
	req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(fositeClientID), url.QueryEscape(fositeSecret))
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		RefreshToken string `json:"refresh_token"`
		Error        string `json:"error"`
		Description  string `json:"error_description"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || body.RefreshToken == "" {
		t.Fatalf("login: HTTP %d, error %q (%s), no refresh token",
			resp.StatusCode, body.Error, body.Description)
	}
	return body.RefreshToken
}

func TestFositeInterop(t *testing.T) {
	for _, style := range []oauth.AuthStyle{oauth.AuthBasic, oauth.AuthInBody} {
		t.Run(style.String(), func(t *testing.T) {
			srv := fositeServer(t)
			rt0 := fositeLogin(t, srv)

			now := time.Now()
			p := oauth.RFC6749Profile(srv.URL, fositeClientID, states.NewSecret(fositeSecret))
			p.AuthStyle = style
			c, err := oauth.NewClient(p, oauth.WithClock(func() time.Time { return now }))
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()

			// Refresh with rotation.
			g1, err := c.Redeem(ctx, states.NewSecret(rt0))
			if err != nil {
				t.Fatalf("first refresh: %v", err)
			}
			rt1 := g1.RefreshToken.Reveal()
			if g1.AccessToken.IsZero() || rt1 == "" || rt1 == rt0 {
				t.Fatalf("first refresh did not rotate: access empty %v, new refresh token empty %v, same %v",
					g1.AccessToken.IsZero(), rt1 == "", rt1 == rt0)
			}
			// fosite's access tokens are opaque; the expiry comes from
			// expires_in and the injected clock.
			if want := now.Add(time.Hour); g1.AccessExpiry.Sub(want).Abs() > 2*time.Second {
				t.Errorf("AccessExpiry = %v, want about %v", g1.AccessExpiry, want)
			}

			// The rotated token works in turn.
			g2, err := c.Redeem(ctx, g1.RefreshToken)
			if err != nil {
				t.Fatalf("second refresh: %v", err)
			}
			rt2 := g2.RefreshToken.Reveal()

			// Replaying a redeemed token is refused for good.
			_, err = c.Redeem(ctx, states.NewSecret(rt0))
			re := asRefreshError(t, err)
			if !re.Permanent || re.Reason != states.ReasonInvalidGrant ||
				re.Status != http.StatusBadRequest || re.Code != "invalid_grant" {
				t.Errorf("replay: got %+v, want permanent invalid_grant with HTTP 400", re)
			}
			assertClean(t, err, rt0, rt1, rt2, fositeSecret)

			// fosite treats a replay as a theft and revokes the whole
			// token family, so the newest token is dead too.
			_, err = c.Redeem(ctx, states.NewSecret(rt2))
			if re := asRefreshError(t, err); !re.Permanent || re.Reason != states.ReasonInvalidGrant {
				t.Errorf("after replay, newest token: got %+v, want permanent invalid_grant", re)
			}
		})
	}
}

// A wrong client secret is a client problem, not a token problem.
func TestFositeWrongSecret(t *testing.T) {
	srv := fositeServer(t)
	rt := fositeLogin(t, srv)
	c, err := oauth.NewClient(oauth.RFC6749Profile(srv.URL, fositeClientID, states.NewSecret("wrong")))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Redeem(context.Background(), states.NewSecret(rt))
	re := asRefreshError(t, err)
	if !re.Permanent || re.Reason != states.ReasonClientRejected ||
		re.Status != http.StatusUnauthorized {
		t.Errorf("got %+v, want permanent client_rejected with HTTP 401", re)
	}
}
