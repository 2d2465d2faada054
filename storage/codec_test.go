package storage

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/credfsm/credfsm/oauth"
	"github.com/credfsm/credfsm/states"
)

func TestParseDocument_everyCodexShape(t *testing.T) {
	for _, f := range fixtures(t) {
		t.Run(f.name, func(t *testing.T) {
			doc, err := parseDocument([]byte(f.json))
			if err != nil {
				t.Fatalf("parseDocument: %v", err)
			}
			if diff := cmp.Diff(f.want, doc.rec); diff != "" {
				t.Errorf("record (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEncodeDocument_roundTripsEveryShape(t *testing.T) {
	for _, f := range fixtures(t) {
		for _, pretty := range []bool{false, true} {
			name := f.name + "/compact"
			if pretty {
				name = f.name + "/indented"
			}
			t.Run(name, func(t *testing.T) {
				data, err := encodeDocument(f.want, document{}, pretty)
				if err != nil {
					t.Fatalf("encodeDocument: %v", err)
				}
				doc, err := parseDocument(data)
				if err != nil {
					t.Fatalf("parseDocument(encoded): %v\n%s", err, data)
				}
				if diff := cmp.Diff(f.want, doc.rec); diff != "" {
					t.Errorf("record (-want +got):\n%s", diff)
				}
			})
		}
	}
}

// The exact bytes matter: Codex and people read this file.
func TestEncodeDocument_wireFormat(t *testing.T) {
	tk := fixtureTokens(t)
	rec := managedRecord(t, fixtureRefresh)
	rec.Tokens.AccountID = "" // written as null

	got, err := encodeDocument(rec, document{}, true)
	if err != nil {
		t.Fatal(err)
	}
	want := `{
  "auth_mode": "chatgpt",
  "OPENAI_API_KEY": null,
  "tokens": {
    "id_token": "` + tk.id + `",
    "access_token": "` + tk.access + `",
    "refresh_token": "` + fixtureRefresh + `",
    "account_id": null
  },
  "last_refresh": "2025-10-01T12:34:56.789012Z"
}`
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("pretty (-want +got):\n%s", diff)
	}

	compact, err := encodeDocument(rec, document{}, false)
	if err != nil {
		t.Fatal(err)
	}
	wantCompact := `{"auth_mode":"chatgpt","OPENAI_API_KEY":null,"tokens":{"id_token":"` + tk.id +
		`","access_token":"` + tk.access + `","refresh_token":"` + fixtureRefresh +
		`","account_id":null},"last_refresh":"2025-10-01T12:34:56.789012Z"}`
	if diff := cmp.Diff(wantCompact, string(compact)); diff != "" {
		t.Errorf("compact (-want +got):\n%s", diff)
	}
}

func TestEncodeDocument_apiKeyRecordOmitsWhatIsAbsent(t *testing.T) {
	rec := states.Record{Mode: states.ModeAPIKey, APIKey: states.NewSecret(fixtureAPIKey)}
	got, err := encodeDocument(rec, document{}, false)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"auth_mode":"apikey","OPENAI_API_KEY":"` + fixtureAPIKey + `"}`
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestEncodeDocument_alwaysWritesNullAPIKey(t *testing.T) {
	for _, f := range fixtures(t) {
		if !f.want.APIKey.IsZero() {
			continue
		}
		t.Run(f.name, func(t *testing.T) {
			data, err := encodeDocument(f.want, document{}, true)
			if err != nil {
				t.Fatal(err)
			}
			var top map[string]json.RawMessage
			if err := json.Unmarshal(data, &top); err != nil {
				t.Fatal(err)
			}
			raw, ok := top["OPENAI_API_KEY"]
			if got := string(raw); !ok || got != "null" {
				t.Errorf("OPENAI_API_KEY = %q (present %v), want null", got, ok)
			}
		})
	}
}

func TestUnknownMembers_surviveReencoding(t *testing.T) {
	tk := fixtureTokens(t)
	stored := `{
  "auth_mode": "chatgpt",
  "future_top": {"nested": [1, 2, {"x": null}]},
  "OPENAI_API_KEY": null,
  "tokens": {"id_token": "` + tk.id + `", "access_token": "` + tk.access + `",
    "refresh_token": "rt_old", "account_id": null, "future_token_field": 42},
  "also_unknown": "kept",
  "last_refresh": "2025-10-01T12:34:56.789012Z"
}`
	next := managedRecord(t, "rt_new")
	data, err := encodeDocument(next, unknownMembers([]byte(stored), true), true)
	if err != nil {
		t.Fatal(err)
	}

	var got map[string]any
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	wantTop := map[string]any{
		"future_top":   map[string]any{"nested": []any{1.0, 2.0, map[string]any{"x": nil}}},
		"also_unknown": "kept",
	}
	for k, want := range wantTop {
		if diff := cmp.Diff(want, got[k]); diff != "" {
			t.Errorf("member %s (-want +got):\n%s", k, diff)
		}
	}
	tokens := got["tokens"].(map[string]any)
	if diff := cmp.Diff(42.0, tokens["future_token_field"]); diff != "" {
		t.Errorf("tokens.future_token_field (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff("rt_new", tokens["refresh_token"]); diff != "" {
		t.Errorf("the new record did not replace the old (-want +got):\n%s", diff)
	}
}

// A record that no longer parses (a login replaces it) still gives up its
// unknown members; one that is not an object gives up none.
func TestUnknownMembers_ofUnparsableRecords(t *testing.T) {
	tests := []struct {
		name, stored string
		want         []string
	}{
		{"bad id token", `{"tokens":{"id_token":"nope","x":1},"keep":true}`, []string{"keep", "x"}},
		{"not an object", `[1,2]`, nil},
		{"truncated", `{"keep":tr`, nil},
		{"nothing stored", ``, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := unknownMembers([]byte(tt.stored), tt.stored != "")
			var got []string
			for _, m := range append(doc.extra, doc.tokensExtra...) {
				got = append(got, m.name)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestEncodeDocument_refusesWhatCouldNotLoad(t *testing.T) {
	secrets := fixtureSecrets(t)
	tests := []struct {
		name string
		rec  states.Record
		want error
	}{
		{"empty record", states.Record{}, ErrEmptyRecord},
		{"api key record without key", states.Record{Mode: states.ModeAPIKey}, ErrInvalidRecord},
		{"managed without tokens", states.Record{Mode: states.ModeManaged}, ErrInvalidRecord},
		{"id token not a JWT", states.Record{Mode: states.ModeManaged, Tokens: states.Tokens{
			IDToken:     states.NewSecret("SECRET-not-a-jwt"),
			AccessToken: states.NewSecret(fixtureRefresh),
		}}, ErrInvalidRecord},
		{"year past 9999", func() states.Record {
			r := managedRecord(t, fixtureRefresh)
			r.LastRefresh = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
			return r
		}(), ErrInvalidRecord},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := encodeDocument(tt.rec, document{}, true)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			assertNoSecret(t, err.Error(), secrets)
		})
	}
}

func TestTimestamp_format(t *testing.T) {
	tests := []struct {
		in   time.Time
		want string
	}{
		{time.Date(2025, 10, 1, 12, 34, 56, 789012345, time.UTC), "2025-10-01T12:34:56.789012345Z"},
		{time.Date(2025, 10, 1, 12, 34, 56, 789012000, time.UTC), "2025-10-01T12:34:56.789012Z"},
		{time.Date(2025, 10, 1, 12, 34, 56, 789000000, time.UTC), "2025-10-01T12:34:56.789Z"},
		{time.Date(2025, 10, 1, 12, 34, 56, 0, time.UTC), "2025-10-01T12:34:56.000Z"},
		{time.Date(2025, 10, 1, 14, 34, 56, 0, time.FixedZone("CEST", 2*3600)),
			"2025-10-01T12:34:56.000Z"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			got, err := formatTimestamp(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("formatTimestamp = %q, want %q", got, tt.want)
			}
			back, err := parseTimestamp(got)
			if err != nil || !back.Equal(tt.in) {
				t.Errorf("parseTimestamp(%q) = %v, %v; want %v", got, back, err, tt.in)
			}
		})
	}
}

func TestTimestamp_parseAcceptsOffsetsAndReturnsUTC(t *testing.T) {
	got, err := parseTimestamp("2025-10-01T14:34:56.5+02:00")
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2025, 10, 1, 12, 34, 56, 500000000, time.UTC)
	if !got.Equal(want) || got.Location() != time.UTC {
		t.Errorf("got %v, want %v in UTC", got, want)
	}
}

func TestParseDocument_idTokenErrorWrapsOAuthSentinel(t *testing.T) {
	in := `{"tokens":{"id_token":"a.b","access_token":"x","refresh_token":"y"}}`
	_, err := parseDocument([]byte(in))
	if !errors.Is(err, oauth.ErrMalformedToken) {
		t.Errorf("err = %v, want it to wrap oauth.ErrMalformedToken", err)
	}
}

// serde refuses a repeated known field; so do we, instead of picking one.
func TestParseDocument_duplicateKnownFieldsAreRefused(t *testing.T) {
	tests := []string{
		`{"OPENAI_API_KEY":"sk-SECRET-a","OPENAI_API_KEY":"sk-SECRET-b"}`,
		`{"OPENAI_API_KEY":null,"tokens":{"id_token":"x","id_token":"y"}}`,
	}
	for _, in := range tests {
		_, err := parseDocument([]byte(in))
		if err == nil || !strings.Contains(err.Error(), "more than once") {
			t.Errorf("parseDocument(%s) err = %v, want a duplicate-field error", in, err)
		}
	}
}

// Names are case-sensitive, as in Codex: a differently cased member is an
// unknown one, not the key.
func TestParseDocument_namesAreCaseSensitive(t *testing.T) {
	in := `{"auth_mode":"apikey","OPENAI_API_KEY":"sk-SECRET-a","openai_api_key":"sk-SECRET-b"}`
	doc, err := parseDocument([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if got := doc.rec.APIKey.Reveal(); got != "sk-SECRET-a" {
		t.Errorf("APIKey = %q, want sk-SECRET-a", got)
	}
	if len(doc.extra) != 1 || doc.extra[0].name != "openai_api_key" {
		t.Errorf("extra = %v, want the lower-case member kept as unknown", doc.extra)
	}
}
