package oauthtest

import (
	"crypto/rand"
	"encoding/base64"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/credfsm/credfsm/states"
)

// Account is who a token set belongs to. Its fields end up in the id token:
// Email at the top level, the others in the https://api.openai.com/auth
// object as chatgpt_plan_type, chatgpt_user_id and chatgpt_account_id. An
// empty field is left out of the token.
type Account struct {
	Email     string
	Plan      string
	UserID    string
	AccountID string
}

// TokenSet is what a login or a redemption hands out. The values are plain
// strings, as a test needs them; wrap them with states.NewSecret (or call
// Tokens) before giving them to credfsm.
type TokenSet struct {
	IDToken      string
	AccessToken  string
	RefreshToken string

	// AccessExpiry is the exp claim of both JWTs.
	AccessExpiry time.Time

	Account Account
}

// Tokens returns the set as credfsm's record fields.
func (t TokenSet) Tokens() states.Tokens {
	return states.Tokens{
		IDToken:      states.NewSecret(t.IDToken),
		AccessToken:  states.NewSecret(t.AccessToken),
		RefreshToken: states.NewSecret(t.RefreshToken),
		AccountID:    t.Account.AccountID,
	}
}

// authClaim is the claim under which OpenAI's tokens carry account data.
const authClaim = "https://api.openai.com/auth"

// apiAudience is the audience of access tokens.
const apiAudience = "https://api.openai.com/v1"

// minter signs tokens for one server. Every token carries a random jti, so
// two tokens minted in the same second still differ.
type minter struct {
	key      []byte
	issuer   string
	clientID string
	lifetime time.Duration
}

func newKey() []byte {
	k := make([]byte, 32)
	_, _ = rand.Read(k) // never fails: crypto/rand panics rather than return an error
	return k
}

// randomID returns a URL-safe random string of n bytes of entropy.
func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// mint issues an id token, an access token and, when rotate is true, a new
// refresh token for acct at now.
func (m *minter) mint(acct Account, now time.Time, withRefresh bool) (TokenSet, error) {
	exp := now.Add(m.lifetime).Truncate(time.Second)
	ns := map[string]any{}
	if acct.Plan != "" {
		ns["chatgpt_plan_type"] = acct.Plan
	}
	if acct.UserID != "" {
		ns["chatgpt_user_id"] = acct.UserID
	}
	if acct.AccountID != "" {
		ns["chatgpt_account_id"] = acct.AccountID
	}
	common := func(aud string) jwt.MapClaims {
		c := jwt.MapClaims{
			"iss": m.issuer,
			"aud": []string{aud},
			"iat": now.Unix(),
			"exp": exp.Unix(),
			"jti": randomID(12),
		}
		if acct.UserID != "" {
			c["sub"] = acct.UserID
		}
		if len(ns) > 0 {
			c[authClaim] = ns
		}
		return c
	}

	idClaims := common(m.clientID)
	if acct.Email != "" {
		idClaims["email"] = acct.Email
	}
	id, err := jwt.NewWithClaims(jwt.SigningMethodHS256, idClaims).SignedString(m.key)
	if err != nil {
		return TokenSet{}, err
	}
	accessClaims := common(apiAudience)
	accessClaims["client_id"] = m.clientID
	access, err := jwt.NewWithClaims(jwt.SigningMethodHS256, accessClaims).SignedString(m.key)
	if err != nil {
		return TokenSet{}, err
	}

	ts := TokenSet{IDToken: id, AccessToken: access, AccessExpiry: exp.UTC(), Account: acct}
	if withRefresh {
		ts.RefreshToken = "rt_" + randomID(32)
	}
	return ts, nil
}
