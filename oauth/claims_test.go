package oauth

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/credfsm/credfsm/states"
)

func TestParseIDTokenPlans(t *testing.T) {
	tests := []struct {
		raw       string
		want      states.Plan
		wantKnown bool
	}{
		{"free", states.PlanFree, true},
		{"go", states.PlanGo, true},
		{"plus", states.PlanPlus, true},
		{"pro", states.PlanPro, true},
		{"team", states.PlanTeam, true},
		{"business", states.PlanBusiness, true},
		{"enterprise", states.PlanEnterprise, true},
		{"edu", states.PlanEdu, true},
		// Unknown plans are kept as they came, case and all.
		{"Pro", states.Plan("Pro"), false},
		{"hc", states.Plan("hc"), false},
		{"", states.Plan(""), false},
	}
	for _, tt := range tests {
		t.Run("plan/"+tt.raw, func(t *testing.T) {
			tok := makeJWT(t, authClaims("a@example.com", map[string]any{
				"chatgpt_plan_type": tt.raw,
			}))
			got, err := ParseIDToken(tok)
			if err != nil {
				t.Fatalf("ParseIDToken: %v", err)
			}
			if got.Plan != tt.want || got.Plan.Known() != tt.wantKnown {
				t.Errorf("plan = %q (known %v), want %q (known %v)",
					got.Plan, got.Plan.Known(), tt.want, tt.wantKnown)
			}
		})
	}
}

func TestParseIDTokenClaims(t *testing.T) {
	tests := []struct {
		name    string
		payload map[string]any
		want    states.Claims
	}{
		{
			name: "all claims",
			payload: authClaims("user@example.com", map[string]any{
				"chatgpt_plan_type":  "pro",
				"chatgpt_user_id":    "user-FAKE123",
				"chatgpt_account_id": "11111111-2222-3333-4444-555555555555",
			}),
			want: states.Claims{
				Email: "user@example.com", Plan: states.PlanPro, UserID: "user-FAKE123",
				AccountID: "11111111-2222-3333-4444-555555555555",
			},
		},
		{
			name:    "missing namespace",
			payload: map[string]any{"sub": "123", "email": "x@example.com"},
			want:    states.Claims{Email: "x@example.com"},
		},
		{
			name:    "nothing credfsm reads",
			payload: map[string]any{"sub": "123"},
			want:    states.Claims{},
		},
		{
			name:    "user_id fallback",
			payload: authClaims("", map[string]any{"user_id": "legacy-7"}),
			want:    states.Claims{UserID: "legacy-7"},
		},
		{
			name: "chatgpt_user_id wins over user_id",
			payload: authClaims("", map[string]any{
				"user_id": "legacy-7", "chatgpt_user_id": "user-8",
			}),
			want: states.Claims{UserID: "user-8"},
		},
		{
			name: "profile email fallback",
			payload: map[string]any{
				profileNamespace: map[string]any{"email": "p@example.com"},
			},
			want: states.Claims{Email: "p@example.com"},
		},
		{
			name: "top-level email wins over profile email",
			payload: map[string]any{
				"email":          "top@example.com",
				profileNamespace: map[string]any{"email": "p@example.com"},
			},
			want: states.Claims{Email: "top@example.com"},
		},
		{
			name: "claims credfsm does not read may have any shape",
			payload: map[string]any{
				"email": "a@example.com", "aud": 42, "exp": "soon", "iat": []int{1},
			},
			want: states.Claims{Email: "a@example.com"},
		},
		{
			name:    "null plan is no plan",
			payload: authClaims("", map[string]any{"chatgpt_plan_type": nil}),
			want:    states.Claims{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseIDToken(makeJWT(t, tt.payload))
			if err != nil {
				t.Fatalf("ParseIDToken: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("claims mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseIDTokenShapes(t *testing.T) {
	enc := base64.RawURLEncoding
	header := enc.EncodeToString([]byte(`{"alg":"none"}`))
	// 34 bytes: base64 needs one padding character.
	payload := `{"email":"pad@example.com","x":""}`
	unpadded := enc.EncodeToString([]byte(payload))
	padded := base64.URLEncoding.EncodeToString([]byte(payload))
	if unpadded == padded {
		t.Fatalf("test payload needs padding; pick another length")
	}

	tests := []struct {
		name    string
		raw     string
		wantErr bool
	}{
		{"unpadded payload", header + "." + unpadded + ".sig", false},
		{"padded payload", header + "." + padded + ".sig", false},
		{"four segments, the extra one ignored", header + "." + unpadded + ".sig.extra", false},
		{"two segments", header + "." + unpadded, true},
		{"one segment", unpadded, true},
		{"empty", "", true},
		{"empty header", "." + unpadded + ".sig", true},
		{"empty payload", header + "..sig", true},
		{"empty signature", header + "." + unpadded + ".", true},
		{"payload not base64", header + ".***.sig", true},
		{"payload not JSON", header + "." + enc.EncodeToString([]byte("hello")) + ".sig", true},
		{"payload JSON null", header + "." + enc.EncodeToString([]byte("null")) + ".sig", true},
		{"payload JSON array", header + "." + enc.EncodeToString([]byte("[1]")) + ".sig", true},
		// Only the payload is decoded, as in Codex: a header that is not
		// JSON does not matter.
		{"header not JSON", "bm90LWpzb24." + unpadded + ".sig", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseIDToken(tt.raw)
			if tt.wantErr {
				if !errors.Is(err, ErrMalformedToken) {
					t.Fatalf("err = %v, want one wrapping ErrMalformedToken", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseIDToken: %v", err)
			}
			if got.Email != "pad@example.com" {
				t.Errorf("email = %q, want pad@example.com", got.Email)
			}
		})
	}
}

func TestParseIDTokenWrongTypes(t *testing.T) {
	tests := []struct {
		name    string
		payload string
	}{
		{"plan is a number", `{"https://api.openai.com/auth":{"chatgpt_plan_type":3}}`},
		{"plan is an object", `{"https://api.openai.com/auth":{"chatgpt_plan_type":{}}}`},
		{"namespace is a string", `{"https://api.openai.com/auth":"pro"}`},
		{"email is a number", `{"email":7}`},
		{"account id is a bool", `{"https://api.openai.com/auth":{"chatgpt_account_id":true}}`},
		{"truncated JSON", `{"email":"a@example.com"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := jwtFromJSON(tt.payload)
			_, err := ParseIDToken(raw)
			if !errors.Is(err, ErrMalformedToken) {
				t.Fatalf("err = %v, want one wrapping ErrMalformedToken", err)
			}
			payload := strings.Split(raw, ".")[1]
			if strings.Contains(err.Error(), raw) || strings.Contains(err.Error(), payload) {
				t.Errorf("error %q echoes the token", err)
			}
		})
	}
}

func TestAccessTokenExpiry(t *testing.T) {
	tests := []struct {
		name   string
		raw    string
		want   time.Time
		wantOK bool
	}{
		{"integer exp", jwtFromJSON(`{"exp":1700000000}`), time.Unix(1700000000, 0).UTC(), true},
		{"fractional exp", jwtFromJSON(`{"exp":1700000000.5}`), time.Unix(1700000000, 5e8).UTC(), true},
		{"no exp", jwtFromJSON(`{"sub":"x"}`), time.Time{}, false},
		{"exp is a string", jwtFromJSON(`{"exp":"1700000000"}`), time.Time{}, false},
		{"exp is zero", jwtFromJSON(`{"exp":0}`), time.Time{}, false},
		{"exp inside the first second", jwtFromJSON(`{"exp":0.5}`), time.Time{}, false},
		{"exp is one", jwtFromJSON(`{"exp":1}`), time.Unix(1, 0).UTC(), true},
		{"exp is negative", jwtFromJSON(`{"exp":-5}`), time.Time{}, false},
		{"exp beyond year 9999", jwtFromJSON(`{"exp":1e300}`), time.Time{}, false},
		{"opaque token", "at_0123456789abcdef", time.Time{}, false},
		{"empty", "", time.Time{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := AccessTokenExpiry(tt.raw)
			if ok != tt.wantOK || !got.Equal(tt.want) {
				t.Errorf("AccessTokenExpiry = %v, %v; want %v, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}
