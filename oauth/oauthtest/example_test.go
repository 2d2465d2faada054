package oauthtest_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/credfsm/credfsm/oauth"
	"github.com/credfsm/credfsm/oauth/oauthtest"
	"github.com/credfsm/credfsm/states"
)

// Start a server, sign an account in, refresh through a client, and watch
// the server detect a replayed refresh token and inject a failure.
func Example() {
	ctx := context.Background()
	srv := oauthtest.NewServer()
	defer srv.Close()

	// A login: the server mints an id, access and refresh token.
	tokens := srv.Issue(oauthtest.Account{
		Email: "dev@example.com", Plan: "plus", UserID: "user-1", AccountID: "acct-1",
	})

	// Point a Codex client at the server.
	client, err := oauth.NewClient(srv.CodexProfile())
	if err != nil {
		fmt.Println(err)
		return
	}

	grant, err := client.Redeem(ctx, states.NewSecret(tokens.RefreshToken))
	fmt.Println("refreshed:", err == nil, grant.Claims.Email, grant.Claims.Plan.Display())
	fmt.Println("rotated:", grant.RefreshToken.Reveal() != tokens.RefreshToken)

	// Redeeming the old refresh token again is a reuse.
	var re *states.RefreshError
	_, err = client.Redeem(ctx, states.NewSecret(tokens.RefreshToken))
	if errors.As(err, &re) {
		fmt.Println("replay:", re.Permanent, re.Reason)
	}

	// The next request is rate limited.
	srv.Inject(oauthtest.RateLimited("30"))
	_, err = client.Redeem(ctx, grant.RefreshToken)
	if errors.As(err, &re) {
		fmt.Println("injected:", re.Permanent, re.Status, re.RetryAfter)
	}

	fmt.Printf("%+v\n", srv.Stats())
	// Output:
	// refreshed: true dev@example.com Plus
	// rotated: true
	// replay: true refresh_token_reused
	// injected: false 429 30s
	// {Requests:3 Redemptions:1 ReuseAttempts:1 MaxInFlight:1}
}

// A frozen clock makes token expiry predictable.
func ExampleWithClock() {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	srv := oauthtest.NewServer(
		oauthtest.WithClock(func() time.Time { return now }),
		oauthtest.WithLifetime(10*time.Minute),
	)
	defer srv.Close()

	tokens := srv.Issue(oauthtest.Account{Email: "dev@example.com"})
	exp, _ := oauth.AccessTokenExpiry(tokens.AccessToken)
	fmt.Println(exp)
	// Output: 2030-01-01 00:10:00 +0000 UTC
}

// A response lost on its way back: the server rotated the token, the client
// timed out and never learned the new one.
func ExampleLoseResponse() {
	srv := oauthtest.NewServer()
	defer srv.Close()
	tokens := srv.Issue(oauthtest.Account{AccountID: "acct-1"})
	client, _ := oauth.NewClient(srv.CodexProfile(), oauth.WithTimeout(50*time.Millisecond))

	srv.Inject(oauthtest.LoseResponse())
	_, err := client.Redeem(context.Background(), states.NewSecret(tokens.RefreshToken))
	fmt.Println("timed out:", errors.Is(err, context.DeadlineExceeded))

	// Blindly retrying with the same token is now a reuse.
	_, err = client.Redeem(context.Background(), states.NewSecret(tokens.RefreshToken))
	var re *states.RefreshError
	errors.As(err, &re)
	fmt.Println("retry:", re.Reason)
	// Output:
	// timed out: true
	// retry: refresh_token_reused
}
