package engine

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/credfsm/credfsm/oauth"
	"github.com/credfsm/credfsm/states"
)

// maxTokenRounds bounds how often one Token call may start a refresh. A
// provider that hands out tokens that are stale on arrival would otherwise
// be asked again and again by the same caller.
const maxTokenRounds = 3

// Token returns the bearer token to use now. In fresh (and for an API key)
// it returns at once, without locks or allocation. When the tokens are stale
// it refreshes them first, joining a refresh already under way; a caller
// whose ctx ends stops waiting and gets ctx.Err(), but the refresh goes on
// for the others.
//
// It fails with an error wrapping ErrLoggedOut, ErrPermanent (with a
// *PermanentError saying why and what to do) or ErrTransient (the access
// token has expired and cannot be refreshed yet).
func (m *Manager) Token(ctx context.Context) (string, error) {
	tok, _, err := m.token(ctx)
	return tok, err
}

// token is Token, also returning the view the token was taken from.
func (m *Manager) token(ctx context.Context) (string, *view, error) {
	if !m.every {
		v := m.view.Load()
		if !v.closed && (v.state == states.APIKey ||
			(v.state == states.Fresh && (!v.hasStale || !m.clock.Now().After(v.staleAt)))) {
			return v.bearer, v, nil
		}
	}
	// TODO: outside fresh (stale, failed_permanent, logged_out) every call
	// is a step of the machine: the lock, a debug log line and an event to
	// every subscriber, so a host that polls Token floods both.
	for round := 0; ; round++ {
		res, v, _, err := m.apply(ctx, func(now time.Time) states.Event {
			return states.TokenRequested{At: now}
		})
		if err != nil {
			return "", nil, err
		}
		if res.To.Waiting() {
			if round >= maxTokenRounds {
				return "", nil, &TransientError{Detail: "the provider keeps issuing tokens that are already stale"}
			}
			if _, err := m.waitSettled(ctx); err != nil {
				return "", nil, err
			}
			continue
		}
		return m.serve(v, v.state)
	}
}

// serve returns the token a resting state offers, or the error that says
// why there is none.
func (m *Manager) serve(v *view, st states.State) (string, *view, error) {
	switch st {
	case states.Fresh, states.APIKey:
		return v.bearer, v, nil
	case states.Stale:
		// A refresh is not possible right now (a backoff, or host-managed
		// tokens that have not expired): an access token that has not
		// expired is still good.
		if v.snap.Expiry.IsZero() || m.clock.Now().Before(v.snap.Expiry) {
			return v.bearer, v, nil
		}
		return "", nil, &TransientError{RetryAt: v.snap.RetryAt, Detail: v.snap.LastError, Err: v.cause}
	case states.LoggedOut:
		return "", nil, fmt.Errorf("%w: sign in with an API key or OAuth tokens", ErrLoggedOut)
	case states.FailedPermanent:
		return "", nil, &PermanentError{Reason: v.snap.Failure, Detail: v.snap.LastError, Err: v.cause}
	}
	return "", nil, fmt.Errorf("%w: no token in state %s", ErrInternal, st)
}

// Action is what a host should do after an API response.
type Action uint8

const (
	// Proceed: nothing to do; the response stands.
	Proceed Action = iota
	// Retry: send the request again with Decision.Token.
	Retry
	// GiveUp: the request cannot succeed; Decision.Err says why.
	GiveUp
)

func (a Action) String() string {
	switch a {
	case Proceed:
		return "proceed"
	case Retry:
		return "retry"
	case GiveUp:
		return "give up"
	}
	return fmt.Sprintf("action(%d)", uint8(a))
}

// Decision is the answer to Observe.
type Decision struct {
	Action Action
	Token  string // the bearer to retry with, for Retry
	Err    error  // why to give up, for GiveUp
}

// Observe reports the API's answer to a request sent with token, and says
// what to do next. Only a 401 matters. A 401 for the current token starts
// recovery (a refresh for managed tokens, a question to the host for
// host-managed ones), joined by every other 401 meanwhile; the answer is
// Retry with the new token, or GiveUp with the reason. A 401 for a token
// that was already replaced starts nothing: the answer is Retry with the
// current token. A refused API key is GiveUp with ErrKeyRejected.
//
// The error of a GiveUp is one of: ErrKeyRejected, ErrRefusedAgain, a
// *PermanentError (ErrPermanent: sign in again), a *TransientError
// (ErrTransient: the refresh failed for now; RetryAt says when the next try
// is due), ErrLoggedOut, ErrClosed, or the ctx's error when ctx ended first.
//
// A 401 for tokens that a recovery brought less than
// Config.RecoveryCooldown ago is GiveUp with ErrRefusedAgain, and no
// refresh: an API that refuses every token then costs one redemption per
// cooldown, not one per request.
//
// body is the response body, if the host has it; it is not stored and only
// its status matters today.
func (m *Manager) Observe(ctx context.Context, token string, status int, body []byte) Decision {
	if status != http.StatusUnauthorized {
		return Decision{Action: Proceed}
	}
	v := m.view.Load()
	gen := v.gen
	if token == "" || token != v.bearer {
		// Not the current token: refer to the generation before, which the
		// rules treat as replaced.
		gen = v.gen - 1
	}
	res, cur, _, err := m.apply(ctx, func(now time.Time) states.Event {
		return states.Unauthorized{At: now, Generation: gen}
	})
	if err != nil {
		return Decision{Action: GiveUp, Err: err}
	}
	if res.To.Waiting() {
		if cur, err = m.waitSettled(ctx); err != nil {
			return Decision{Action: GiveUp, Err: err}
		}
	}

	switch {
	case cur.state == states.LoggedOut || cur.state == states.FailedPermanent:
		_, _, err := m.serve(cur, cur.state)
		return Decision{Action: GiveUp, Err: err}
	case cur.bearer != "" && cur.bearer != token:
		if tok, _, err := m.serve(cur, cur.state); err == nil {
			return Decision{Action: Retry, Token: tok}
		} else {
			return Decision{Action: GiveUp, Err: err}
		}
	case cur.state == states.APIKey:
		return Decision{Action: GiveUp, Err: ErrKeyRejected}
	case res.Rule == ruleRefusedAgain:
		return Decision{Action: GiveUp, Err: ErrRefusedAgain}
	default:
		return Decision{Action: GiveUp, Err: &TransientError{RetryAt: cur.snap.RetryAt,
			Detail: firstNonEmpty(cur.snap.LastError, "the refused token could not be replaced yet"),
			Err:    cur.cause}}
	}
}

// ruleRefusedAgain is the rule that answers a 401 for tokens a recovery has
// just brought.
const ruleRefusedAgain = "unauthorized_again"

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

// ErrEmptyCredential is returned by the Login methods when a key or token is
// missing.
var ErrEmptyCredential = errors.New("engine: the credential is empty")

// LoginAPIKey signs in with an API key, saves it, and returns once saved.
// Surrounding white space is removed.
func (m *Manager) LoginAPIKey(ctx context.Context, key string) error {
	key = strings.TrimSpace(key)
	if key == "" {
		return fmt.Errorf("%w: the API key is empty", ErrEmptyCredential)
	}
	return m.login(ctx, states.Record{Mode: states.ModeAPIKey, APIKey: states.NewSecret(key)})
}

// LoginTokens signs in with OAuth tokens that credfsm will refresh itself
// (a Codex ChatGPT login), saves them, and returns once saved. The id token
// must parse; its workspace claim becomes the account id.
func (m *Manager) LoginTokens(ctx context.Context, idToken, accessToken, refreshToken string) error {
	rec, err := m.tokenRecord(states.ModeManaged, idToken, accessToken, refreshToken)
	if err != nil {
		return err
	}
	return m.login(ctx, rec)
}

// LoginExternal signs in with tokens the host manages (and refreshes, through
// the refresher set with SetExternalRefresher). They are kept in memory only.
func (m *Manager) LoginExternal(ctx context.Context, idToken, accessToken string) error {
	rec, err := m.tokenRecord(states.ModeExternal, idToken, accessToken, "")
	if err != nil {
		return err
	}
	return m.login(ctx, rec)
}

func (m *Manager) tokenRecord(mode states.Mode, id, access, refresh string) (states.Record, error) {
	id, access, refresh = strings.TrimSpace(id), strings.TrimSpace(access), strings.TrimSpace(refresh)
	switch {
	case id == "":
		return states.Record{}, fmt.Errorf("%w: the id token is empty", ErrEmptyCredential)
	case access == "":
		return states.Record{}, fmt.Errorf("%w: the access token is empty", ErrEmptyCredential)
	case mode == states.ModeManaged && refresh == "":
		return states.Record{}, fmt.Errorf("%w: the refresh token is empty", ErrEmptyCredential)
	}
	claims, err := oauth.ParseIDToken(id)
	if err != nil {
		return states.Record{}, fmt.Errorf("engine: the id token cannot be used: %w", err)
	}
	rec := states.Record{
		Mode: mode,
		Tokens: states.Tokens{
			IDToken:      states.NewSecret(id),
			AccessToken:  states.NewSecret(access),
			RefreshToken: states.NewSecret(refresh),
			AccountID:    claims.AccountID,
		},
		Claims:      claims,
		LastRefresh: m.clock.Now().UTC(),
	}
	if exp, ok := oauth.AccessTokenExpiry(access); ok {
		rec.AccessExpiry = exp
	}
	return rec, nil
}

func (m *Manager) login(ctx context.Context, rec states.Record) error {
	res, v, err := m.applyAndWait(ctx, func(now time.Time) states.Event {
		return states.LoginRequested{At: now, Record: rec}
	})
	if err != nil {
		return err
	}
	if res.To == states.FailedPermanent {
		return &PermanentError{Reason: v.snap.Failure, Detail: v.snap.LastError, Err: v.cause}
	}
	if now := m.view.Load(); now.snap.Generation == res.Generation && now.snap.Unsaved {
		return &unsavedLoginError{lastError: now.snap.LastError, cause: now.cause}
	}
	return nil
}

// unsavedLoginError: the login took in this process, but its save failed.
// It unwraps to the save's error (states.ErrLockTimeout, a permission
// error, ...), so that a caller can tell a busy store from a broken one.
type unsavedLoginError struct {
	lastError string
	cause     error
}

func (e *unsavedLoginError) Error() string {
	return "engine: signed in for this process, but " + e.lastError
}

func (e *unsavedLoginError) Unwrap() error { return e.cause }

// applyAndWait applies an event and, if it started a flight, waits for the
// flight to end. The view is the one the step published.
func (m *Manager) applyAndWait(ctx context.Context, build func(time.Time) states.Event) (Result, *view, error) {
	res, v, idle, err := m.apply(ctx, build)
	if err != nil || idle == nil {
		return res, v, err
	}
	select {
	case <-idle:
		return res, v, nil
	case <-ctx.Done():
		return res, v, ctx.Err()
	}
}

// Logout forgets the credential and deletes it from every store that may
// hold it, reporting each one. The error joins the stores that could not be
// cleared; the others are cleared regardless.
func (m *Manager) Logout(ctx context.Context) ([]states.Removal, error) {
	_, _, err := m.applyAndWait(ctx, func(now time.Time) states.Event {
		return states.LogoutRequested{At: now}
	})
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lastRemovals, m.lastClearErr
}

// Reload reads the store again, as at start-up. A different credential
// replaces the current one; a credential that failed for good stays failed
// while the store holds the same one.
func (m *Manager) Reload(ctx context.Context) error {
	for {
		// Let a flight finish first, so the read sees its result.
		if err := m.waitIdle(ctx); err != nil {
			return err
		}
		m.mu.Lock()
		seq := m.flights
		m.mu.Unlock()

		loaded := m.load(ctx)
		_, _, err := m.applyAndWait(ctx, func(now time.Time) states.Event {
			// Every write of this manager to the store is part of a
			// flight. If one ran since the read, what was read may be
			// out of date (tokens a refresh has since spent, a login
			// since replaced): read again.
			if m.flight || m.flights != seq {
				return nil
			}
			loaded.At = now
			return loaded
		})
		if errors.Is(err, errWithdrawn) {
			continue
		}
		return err
	}
}

// load reads the credential: CODEX_API_KEY when honoured and set, else the
// store.
func (m *Manager) load(ctx context.Context) states.Loaded {
	if m.loadEnv != nil {
		if rec, ok := m.loadEnv(); ok {
			return states.Loaded{Record: rec, FromEnv: true}
		}
	}
	rec, v, err := m.store.Load(ctx)
	if err != nil {
		return states.Loaded{Version: v, Err: err}
	}
	return states.Loaded{Record: rec, Version: v}
}

func (m *Manager) waitIdle(ctx context.Context) error {
	m.mu.Lock()
	idle := m.idle
	m.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ErrNotRefreshable is returned by Refresh for an API key.
var ErrNotRefreshable = errors.New("engine: an API key is not refreshed")

// Refresh refreshes the tokens now, stale or not, and reports the outcome.
// If another process has already refreshed them, their tokens are adopted
// and nothing is redeemed.
//
// TODO: the outcome is read from the state Refresh finds when it stops
// waiting. A login or logout that was waiting for the refresh and got the
// lock first is reported instead of the refresh's own result; waiters
// would need the outcome of the flight they joined.
func (m *Manager) Refresh(ctx context.Context) error {
	res, v, _, err := m.apply(ctx, func(now time.Time) states.Event {
		return states.RefreshRequested{At: now}
	})
	if err != nil {
		return err
	}
	if res.To.Waiting() {
		if v, err = m.waitSettled(ctx); err != nil {
			return err
		}
	}
	switch v.state {
	case states.Fresh:
		return nil
	case states.APIKey:
		return ErrNotRefreshable
	case states.Stale:
		return &TransientError{RetryAt: v.snap.RetryAt, Detail: v.snap.LastError, Err: v.cause}
	}
	_, _, err = m.serve(v, v.state)
	return err
}

// SetExternalRefresher registers the host that refreshes host-managed
// tokens. Each request is bounded by the configured host timeout.
func (m *Manager) SetExternalRefresher(h oauth.TokenHost) {
	m.host.set(h)
}
