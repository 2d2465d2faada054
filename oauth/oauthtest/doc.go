// Package oauthtest provides a token endpoint on a loopback address for
// tests, demos and the test suites of applications that embed credfsm, in
// the way net/http/httptest provides HTTP servers.
//
// A [Server] speaks both refresh protocols the oauth package knows: the Codex
// one (a JSON request, OpenAI's error shapes) and plain RFC 6749 (a
// form-encoded request, standard error responses). It issues id and access
// tokens that are real signed JWTs with an exp taken from an injectable
// clock, rotates the refresh token on every redemption, detects a reused
// refresh token the way a real provider does, and can be told to fail the
// next requests in specific ways. Counters let a test assert how many
// requests, redemptions and reuse attempts there were, and how many requests
// were in flight at once.
//
// Typical use:
//
//	srv := oauthtest.NewServer()
//	defer srv.Close()
//	tokens := srv.Issue(oauthtest.Account{Email: "dev@example.com", AccountID: "acct-1"})
//	client, _ := oauth.NewClient(srv.CodexProfile())
//	grant, err := client.Redeem(ctx, states.NewSecret(tokens.RefreshToken))
//
// The server never talks to the network beyond its loopback listener and
// holds everything in memory. It is safe for concurrent use.
package oauthtest
