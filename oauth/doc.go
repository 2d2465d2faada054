// Package oauth speaks to OAuth token endpoints for credfsm: it redeems
// refresh tokens (the Codex JSON protocol or plain RFC 6749 section 6),
// classifies every outcome as a success, a transient failure or a permanent
// one with a reason, reads the claims credfsm needs from id and access
// tokens, and asks an embedding host for tokens it manages itself.
//
// # Providers are data
//
// A [Profile] says where a provider's token endpoint is, how a refresh
// request is encoded (JSON or form), how the client authenticates (HTTP
// Basic or body fields), which scope is sent, and which error codes mean the
// refresh token is gone for good. [CodexProfile] and [RFC6749Profile] are the
// two built in; another provider is another Profile, not another code path.
// [NewClient] checks a profile once: the endpoint must be https unless it is
// a loopback address.
//
// # Classification
//
// [Client.Redeem] returns a states.Grant or a *states.RefreshError, decided
// in this order:
//
//  1. A 2xx carrying an access token is a success, even when its id token
//     cannot be parsed (the grant then carries IDTokenErr), because the
//     refresh token it returns has already replaced the one sent.
//  2. An error code in the profile's table is permanent whatever the status
//     (refresh_token_expired, refresh_token_reused, refresh_token_invalidated,
//     invalid_grant, invalid_client, unauthorized_client).
//  3. Any other 401 is permanent for an unknown reason.
//  4. Everything else is transient: network errors, timeouts, 408, 429
//     (with its Retry-After), 5xx, other 4xx, redirects, and a 2xx without
//     JSON or without an access token.
//
// # Secrets
//
// No error from this package contains a token or a client secret. Text
// taken from a response is passed through [Sanitize], which removes the
// tokens it knows of and anything that looks like one, and cuts the rest to
// a short line. Response bodies are read up to [MaxBodySize].
//
// # What it never does
//
// It never stores tokens, never retries, never logs, and never follows a
// redirect from a token endpoint. Deciding what to do after an outcome, such
// as backing off, re-reading the store, or asking a person to sign in again,
// is the state machine's job.
//
// Package oauthtest provides a token endpoint for tests that speaks both
// protocols.
package oauth
