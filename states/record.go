package states

import (
	"fmt"
	"log/slog"
	"time"
)

// Mode says what kind of credential a [Record] holds and who refreshes it.
type Mode uint8

const (
	// ModeNone is the mode of the empty record (nothing is known).
	ModeNone Mode = iota
	// ModeAPIKey is a static API key; it is never refreshed.
	ModeAPIKey
	// ModeManaged is OAuth tokens that credfsm refreshes itself through the
	// provider's token endpoint and persists in the configured store.
	ModeManaged
	// ModeExternal is OAuth tokens supplied by the embedding host. They are
	// kept in memory only and refreshed by asking the host.
	ModeExternal
)

// Wire names of the modes, as written in the auth_mode field of a Codex
// auth.json record.
const (
	WireAPIKey   = "apikey"
	WireManaged  = "chatgpt"
	WireExternal = "chatgptAuthTokens"
)

// String returns the mode's wire name ("apikey", "chatgpt",
// "chatgptAuthTokens"), or "none".
func (m Mode) String() string {
	switch m {
	case ModeAPIKey:
		return WireAPIKey
	case ModeManaged:
		return WireManaged
	case ModeExternal:
		return WireExternal
	case ModeNone:
		return "none"
	}
	return fmt.Sprintf("mode(%d)", uint8(m))
}

// Label returns a short human description of the mode.
func (m Mode) Label() string {
	switch m {
	case ModeAPIKey:
		return "API key"
	case ModeManaged:
		return "OAuth tokens (refreshed by credfsm)"
	case ModeExternal:
		return "OAuth tokens (refreshed by the host)"
	}
	return "none"
}

// MarshalText encodes the mode as its wire name.
func (m Mode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// ParseMode maps a wire name to a mode.
func ParseMode(wire string) (Mode, error) {
	switch wire {
	case WireAPIKey:
		return ModeAPIKey, nil
	case WireManaged:
		return ModeManaged, nil
	case WireExternal:
		return ModeExternal, nil
	}
	return ModeNone, fmt.Errorf("states: unknown auth mode %q (want %q, %q or %q)",
		wire, WireAPIKey, WireManaged, WireExternal)
}

// Tokens are the OAuth tokens of a managed or host-managed credential.
type Tokens struct {
	IDToken      Secret
	AccessToken  Secret
	RefreshToken Secret // empty for host-managed tokens

	// AccountID is the account (workspace) the tokens belong to, as stored
	// next to them. It is sent as the ChatGPT-Account-ID header and compared
	// when another process may have switched accounts.
	AccountID string
}

// Plan is a ChatGPT plan type from the id token. Known plans are the
// constants below; any other string is kept as it came.
type Plan string

// The plans Codex knows.
const (
	PlanFree       Plan = "free"
	PlanGo         Plan = "go"
	PlanPlus       Plan = "plus"
	PlanPro        Plan = "pro"
	PlanTeam       Plan = "team"
	PlanBusiness   Plan = "business"
	PlanEnterprise Plan = "enterprise"
	PlanEdu        Plan = "edu"
)

// Known reports whether p is one of the known plans (matched exactly, in
// lower case).
func (p Plan) Known() bool {
	switch p {
	case PlanFree, PlanGo, PlanPlus, PlanPro, PlanTeam, PlanBusiness, PlanEnterprise, PlanEdu:
		return true
	}
	return false
}

// Display returns the plan for people: "Pro" for a known plan, the raw value
// otherwise, and "" when no plan is known.
func (p Plan) Display() string {
	if !p.Known() || p == "" {
		return string(p)
	}
	return string(p[0]-'a'+'A') + string(p[1:])
}

// Claims are what credfsm reads from an id token. None of them is a secret.
type Claims struct {
	Email     string
	Plan      Plan
	UserID    string
	AccountID string // the chatgpt_account_id claim: the workspace
}

// Record is one credential, as loaded from or saved to a store.
//
// Invariant: Mode decides which fields matter. ModeAPIKey uses APIKey;
// ModeManaged and ModeExternal use Tokens and Claims (a managed record may
// also carry an API key obtained by token exchange, which is kept but not
// used as the bearer).
type Record struct {
	Mode   Mode
	APIKey Secret
	Tokens Tokens
	Claims Claims

	// AccessExpiry is the access token's exp claim; zero when the access
	// token is opaque or carries no exp.
	AccessExpiry time.Time

	// LastRefresh is when the tokens were last obtained; zero when unknown.
	// A record without it is still usable.
	LastRefresh time.Time
}

// IsZero reports whether the record holds no credential.
func (r Record) IsZero() bool { return r.Mode == ModeNone }

// Bearer returns the value to send as "Authorization: Bearer": the API key
// for an API-key record, the access token otherwise.
func (r Record) Bearer() Secret {
	if r.Mode == ModeAPIKey {
		return r.APIKey
	}
	return r.Tokens.AccessToken
}

// AccountID returns the account the credential belongs to: the stored
// account id, else the id token's workspace claim.
func (r Record) AccountID() string {
	if r.Tokens.AccountID != "" {
		return r.Tokens.AccountID
	}
	return r.Claims.AccountID
}

// SameCredential reports whether two records hold the same credential: the
// same mode and the same key or tokens. Claims and times are not compared,
// since they are derived from the tokens or say when they were obtained.
func (r Record) SameCredential(o Record) bool {
	return r.Mode == o.Mode &&
		r.APIKey.Equal(o.APIKey) &&
		r.Tokens.IDToken.Equal(o.Tokens.IDToken) &&
		r.Tokens.AccessToken.Equal(o.Tokens.AccessToken) &&
		r.Tokens.RefreshToken.Equal(o.Tokens.RefreshToken) &&
		r.Tokens.AccountID == o.Tokens.AccountID
}

// LogValue lists the record's non-secret facts for log/slog.
func (r Record) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("mode", r.Mode.String()),
		slog.String("account", r.AccountID()),
		slog.String("email", r.Claims.Email),
		slog.String("plan", string(r.Claims.Plan)),
	)
}
