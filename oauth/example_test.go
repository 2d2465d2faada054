package oauth_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/credfsm/credfsm/oauth"
	"github.com/credfsm/credfsm/oauth/oauthtest"
	"github.com/credfsm/credfsm/states"
)

// Redeem returns a grant or a *states.RefreshError that says whether trying
// again can help.
func ExampleClient_Redeem() {
	srv := oauthtest.NewServer()
	defer srv.Close()
	tokens := srv.Issue(oauthtest.Account{Email: "dev@example.com", AccountID: "acct-1"})
	srv.Expire(tokens.RefreshToken)

	client, err := oauth.NewClient(srv.CodexProfile())
	if err != nil {
		fmt.Println(err)
		return
	}
	_, err = client.Redeem(context.Background(), states.NewSecret(tokens.RefreshToken))

	var re *states.RefreshError
	switch {
	case err == nil:
		fmt.Println("persist the grant")
	case errors.As(err, &re) && re.Permanent:
		fmt.Printf("%s: %s\n", re.Reason.Describe(), re.Reason.NextStep())
	default:
		fmt.Println("retry later:", err)
	}
	// Output: the refresh token has expired: sign in again
}

// A provider is a profile: data, not code.
func ExampleProfile() {
	p := oauth.RFC6749Profile("https://idp.example.com/oauth2/token", "my-cli",
		states.NewSecret("s3cret"))
	p.Scope = "openid offline_access"
	p.Codes["consent_required"] = states.ReasonRevoked // a provider-specific code

	client, err := oauth.NewClient(p)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(client.TokenURL())

	p.TokenURL = "http://idp.example.com/oauth2/token"
	_, err = oauth.NewClient(p)
	fmt.Println(errors.Is(err, oauth.ErrInsecureEndpoint))
	// Output:
	// https://idp.example.com/oauth2/token
	// true
}
