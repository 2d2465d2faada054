package states_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/credfsm/credfsm/effects"
	"github.com/credfsm/credfsm/states"
)

// Raw values that must never appear in anything printed, logged or encoded.
// Each is distinctive, so that a leak cannot hide behind a common substring.
const (
	rawAPIKey  = "sk-proj-LEAK-apikey-7f3a"
	rawID      = "eyJ-LEAK-idtoken-91c2"
	rawAccess  = "at-LEAK-access-55d0"
	rawRefresh = "rt-LEAK-refresh-c1e8"
	rawRotated = "rt-LEAK-rotated-0b94"
)

var raws = []string{rawAPIKey, rawID, rawAccess, rawRefresh, rawRotated}

// leaks returns every raw value found in out, also in hexadecimal (which %x
// would produce for a plain string) and in Go-quoted form.
func leaks(out string) []string {
	var found []string
	lower := strings.ToLower(out)
	for _, raw := range raws {
		h := hex.EncodeToString([]byte(raw))
		if strings.Contains(out, raw) || strings.Contains(lower, h) {
			found = append(found, raw)
		}
	}
	return found
}

func secretRecord() states.Record {
	return states.Record{
		Mode:   states.ModeManaged,
		APIKey: states.NewSecret(rawAPIKey),
		Tokens: states.Tokens{
			IDToken:      states.NewSecret(rawID),
			AccessToken:  states.NewSecret(rawAccess),
			RefreshToken: states.NewSecret(rawRefresh),
			AccountID:    "acct-1",
		},
		Claims:       states.Claims{Email: "dev@example.com", Plan: states.PlanPro, AccountID: "acct-1"},
		AccessExpiry: time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC),
		LastRefresh:  time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC),
	}
}

// secretCarriers are values that hold secrets somewhere inside them, as the
// core passes them around: the secret alone, records, the extended state,
// events and commands.
func secretCarriers() []struct {
	name string
	v    any
} {
	rec := secretRecord()
	ext := states.Extended{Record: rec, Version: "v1", Generation: 3, LastError: "refresh failed"}
	grant := states.Grant{
		IDToken:      states.NewSecret(rawID),
		AccessToken:  states.NewSecret(rawAccess),
		RefreshToken: states.NewSecret(rawRotated),
		Claims:       rec.Claims,
	}
	at := rec.LastRefresh
	return []struct {
		name string
		v    any
	}{
		{"secret", states.NewSecret(rawAPIKey)},
		{"secret_pointer", func() *states.Secret { s := states.NewSecret(rawAPIKey); return &s }()},
		{"tokens", rec.Tokens},
		{"record", rec},
		{"record_pointer", &rec},
		{"api_key_record", states.Record{Mode: states.ModeAPIKey, APIKey: states.NewSecret(rawAPIKey)}},
		{"extended", ext},
		{"extended_pointer", &ext},
		{"grant", grant},
		{"secret_slice", []states.Secret{states.NewSecret(rawAccess), states.NewSecret(rawRefresh)}},
		{"secret_map", map[string]states.Secret{"refresh": states.NewSecret(rawRefresh)}},
		{"event_loaded", states.Loaded{At: at, Record: rec, Version: "v1"}},
		{"event_login", states.LoginRequested{At: at, Record: rec}},
		{"event_reread", states.StoreReread{At: at, Generation: 3, Record: rec, Version: "v2"}},
		{"event_refreshed", states.RefreshSucceeded{At: at, Generation: 3, Grant: grant}},
		{"event_as_interface", states.Event(states.HostRefreshSucceeded{At: at, Grant: grant})},
		{"command_persist", effects.PersistRecord{Generation: 3, Record: rec, Expected: "v1"}},
		{"command_redeem", effects.RedeemRefreshToken{Generation: 3,
			RefreshToken: states.NewSecret(rawRefresh)}},
		{"commands", []effects.Command{
			effects.RedeemRefreshToken{Generation: 3, RefreshToken: states.NewSecret(rawRefresh)},
			effects.PersistRecord{Generation: 4, Record: rec, Expected: "v1"},
		}},
	}
}

func TestSecretsNeverPrint(t *testing.T) {
	verbs := []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10.3s"}
	for _, c := range secretCarriers() {
		for _, verb := range verbs {
			t.Run("fmt/"+c.name+"/"+verb, func(t *testing.T) {
				out := fmt.Sprintf(verb, c.v)
				if got := leaks(out); len(got) > 0 {
					t.Errorf("fmt %s printed %q; raw values %q leaked", verb, out, got)
				}
			})
		}
		t.Run("fmt/"+c.name+"/Sprint", func(t *testing.T) {
			out := fmt.Sprint(c.v) + fmt.Sprintln(c.v)
			if got := leaks(out); len(got) > 0 {
				t.Errorf("Sprint printed %q; raw values %q leaked", out, got)
			}
		})
		t.Run("json/"+c.name, func(t *testing.T) {
			b, err := json.Marshal(c.v)
			if err != nil {
				t.Fatalf("json.Marshal: %v", err)
			}
			if got := leaks(string(b)); len(got) > 0 {
				t.Errorf("json.Marshal gave %s; raw values %q leaked", b, got)
			}
		})
		for _, h := range []struct {
			name string
			new  func(*bytes.Buffer) slog.Handler
		}{
			{"slog_json", func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) }},
			{"slog_text", func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) }},
		} {
			t.Run(h.name+"/"+c.name, func(t *testing.T) {
				var buf bytes.Buffer
				log := slog.New(h.new(&buf))
				log.Info("credential", "value", c.v)
				log.Info("credential", slog.Any("any", c.v), slog.Group("group", "nested", c.v))
				log.With("bound", c.v).Info("bound")
				if got := leaks(buf.String()); len(got) > 0 {
					t.Errorf("%s logged %s; raw values %q leaked", h.name, buf.String(), got)
				}
			})
		}
	}
}

func TestSecretPrintsRedacted(t *testing.T) {
	s := states.NewSecret(rawAPIKey)
	tests := []struct {
		name, got, want string
	}{
		{"String", s.String(), states.Redacted},
		{"%v", fmt.Sprintf("%v", s), states.Redacted},
		{"%#v", fmt.Sprintf("%#v", s), `states.Secret("[REDACTED]")`},
		{"%q", fmt.Sprintf("%q", s), states.Redacted},
		{"%x", fmt.Sprintf("%x", s), states.Redacted},
		{"json", mustJSON(t, s), `"[REDACTED]"`},
		{"text", mustText(t, s), states.Redacted},
		{"slog_value", s.LogValue().String(), states.Redacted},
		{"zero/String", states.Secret{}.String(), ""},
		{"zero/json", mustJSON(t, states.Secret{}), `""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}

func TestSecretReveal(t *testing.T) {
	s := states.NewSecret(rawRefresh)
	if got := s.Reveal(); got != rawRefresh {
		t.Errorf("Reveal() = %q, want the raw value", got)
	}
	if s.IsZero() {
		t.Error("IsZero() = true for a non-empty secret")
	}
	if !(states.Secret{}).IsZero() || states.NewSecret("").Reveal() != "" {
		t.Error("the zero secret is not empty")
	}
	if !s.Equal(states.NewSecret(rawRefresh)) || s.Equal(states.NewSecret(rawRotated)) {
		t.Error("Equal does not compare the raw values")
	}
	rec := secretRecord()
	if got := rec.Bearer().Reveal(); got != rawAccess {
		t.Errorf("Bearer() of a token record = %q, want the access token", got)
	}
	rec.Mode = states.ModeAPIKey
	if got := rec.Bearer().Reveal(); got != rawAPIKey {
		t.Errorf("Bearer() of an API-key record = %q, want the key", got)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mustText(t *testing.T, s states.Secret) string {
	t.Helper()
	b, err := s.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
