package storage

import (
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/zalando/go-keyring"

	"github.com/credfsm/credfsm/states"
)

// badRecord is stored content that must not load, and the words the error
// has to use for it.
type badRecord struct {
	name        string
	content     string
	wantProblem string
}

// badRecords lists every bad shape. Each carries secrets, so the test can
// check they do not come back in the error.
func badRecords(t *testing.T) []badRecord {
	tk := fixtureTokens(t)
	managed := fixtures(t)[0].json
	q := func(s string) string { return `"` + s + `"` }
	tokens := func(id, access, refresh string) string {
		return `"tokens":{"id_token":` + id + `,"access_token":` + access +
			`,"refresh_token":` + refresh + `}`
	}
	good := tokens(q(tk.id), q(tk.access), q(fixtureRefresh))
	key := func(v string) string { return `"OPENAI_API_KEY":` + v }

	return []badRecord{
		{"empty file", ``, "empty"},
		{"white space only", " \n\t", "empty"},
		{"truncated", managed[:len(managed)/2], "truncated JSON"},
		{"truncated inside a value", `{` + key(`"`+fixtureAPIKey), "truncated JSON"},
		{"not JSON", "OPENAI_API_KEY=" + fixtureAPIKey + "\n",
			"not valid JSON (syntax error near byte 1)"},
		{"JSON with a stray character", `{` + key(q(fixtureAPIKey)) + ` x}`, "not valid JSON"},
		{"top-level array", `[` + q(fixtureAPIKey) + `]`, "want a JSON object, found an array"},
		{"top-level string", q(fixtureAPIKey), "want a JSON object, found a string"},
		{"top-level null", `null`, "want a JSON object, found null"},
		{"data after the object", managed + `{` + key(q(fixtureXKey)) + `}`,
			"after the JSON object"},
		{"key of the wrong type", `{` + key(`12345`) + `,` + good + `}`,
			"OPENAI_API_KEY must be a string or null, found a number"},
		{"auth_mode of the wrong type", `{"auth_mode":[` + q(fixtureAPIKey) + `]}`,
			"auth_mode must be a string or null, found an array"},
		{"tokens of the wrong type", `{"tokens":` + q(fixtureRefresh) + `}`,
			"tokens must be an object or null, found a string"},
		{"id_token of the wrong type", `{` + tokens(`7`, q(tk.access), q(fixtureRefresh)) + `}`,
			"tokens.id_token must be a string, found a number"},
		{"refresh_token null", `{` + tokens(q(tk.id), q(tk.access), `null`) + `}`,
			"tokens.refresh_token must be a string, found null"},
		{"refresh_token missing",
			`{"tokens":{"id_token":` + q(tk.id) + `,"access_token":` + q(tk.access) + `}}`,
			"tokens.refresh_token is missing"},
		{"account_id of the wrong type",
			`{"tokens":{"id_token":` + q(tk.id) + `,"access_token":` + q(tk.access) +
				`,"refresh_token":` + q(fixtureRefresh) + `,"account_id":{}}}`,
			"tokens.account_id must be a string or null"},
		{"empty last_refresh", `{` + good + `,"last_refresh":""}`,
			"last_refresh is an empty string"},
		{"last_refresh not a time", `{` + good + `,"last_refresh":` + q(fixtureXKey) + `}`,
			"last_refresh is not an RFC 3339 time"},
		{"last_refresh of the wrong type", `{` + good + `,"last_refresh":1759322096}`,
			"last_refresh must be a string or null, found a number"},
		{"id_token not a JWT",
			`{` + tokens(q(fixtureXKey), q(tk.access), q(fixtureRefresh)) + `}`,
			"tokens.id_token is not a usable JWT"},
		{"id_token with an undecodable payload",
			`{` + tokens(q("eyJhbGciOiJub25lIn0.SECRET!payload.c2ln"), q(tk.access),
				q(fixtureRefresh)) + `}`,
			"tokens.id_token is not a usable JWT"},
		{"api key mode without a key", `{"auth_mode":"apikey",` + key(`null`) + `,` + good + `}`,
			`auth mode "apikey" needs OPENAI_API_KEY, which is missing or null`},
		{"api key mode with an empty key", `{"auth_mode":"apikey",` + key(`""`) + `}`,
			`auth mode "apikey" needs OPENAI_API_KEY, which is empty`},
		{"managed mode without tokens",
			`{"auth_mode":"chatgpt",` + key(`null`) + `,"last_refresh":"2025-10-01T12:34:56Z"}`,
			`auth mode "chatgpt" needs tokens, which is missing or null`},
		{"legacy record with neither key nor tokens", `{` + key(`null`) + `,"tokens":null}`,
			`holds neither an API key (OPENAI_API_KEY) nor tokens`},
		{"empty object", `{}`, `holds neither an API key (OPENAI_API_KEY) nor tokens`},
		{"host-managed mode without tokens",
			`{"auth_mode":"chatgptAuthTokens",` + key(q(fixtureXKey)) + `}`,
			`auth mode "chatgptAuthTokens" needs tokens`},
		{"unknown auth_mode", `{"auth_mode":` + q(fixtureXKey) + `,` + good + `}`,
			"auth_mode has an unknown value"},
		{"repeated key", `{` + key(q(fixtureAPIKey)) + `,` + key(q(fixtureXKey)) + `}`,
			"OPENAI_API_KEY appears more than once"},
		{"too big",
			`{` + key(q(fixtureAPIKey)) + `,"pad":` + q(strings.Repeat("A", maxRecordSize)) + `}`,
			"larger than 1 MiB, the most a record can be"},
	}
}

// Every bad shape is a *LoadError that wraps states.ErrUnreadable, names
// where it was read and what is wrong, holds no secret, and leaves the
// stored content as it was.
func TestLoad_badInput(t *testing.T) {
	secrets := fixtureSecrets(t)
	for _, bad := range badRecords(t) {
		t.Run("file/"+bad.name, func(t *testing.T) {
			home := t.TempDir()
			path := writeRaw(t, home, bad.content, 0o600)
			rec, v, err := NewFile(home, nil).Load(ctxT(t))
			checkLoadError(t, err, path, bad, secrets)
			if !rec.IsZero() {
				t.Errorf("a bad record loaded as %v", rec.Mode)
			}
			if want := versionOf([]byte(bad.content), true); v != want {
				t.Errorf("version = %q, want the hash of what is stored", v)
			}
			if got := readRaw(t, home); got != bad.content {
				t.Errorf("Load changed the file")
			}
		})
	}
	for _, bad := range badRecords(t) {
		t.Run("keyring/"+bad.name, func(t *testing.T) {
			keyring.MockInit()
			home := t.TempDir()
			account := KeyringAccount(home)
			if err := keyring.Set(KeyringService, account, bad.content); err != nil {
				t.Fatal(err)
			}
			_, _, err := NewKeyring(home, nil, 0, nil).Load(ctxT(t))
			checkLoadError(t, err, "keyring "+keyringEntry(account), bad, secrets)
			if got, _ := keyring.Get(KeyringService, account); got != bad.content {
				t.Errorf("Load changed the keyring entry")
			}
		})
	}
}

func checkLoadError(t *testing.T, err error, where string, bad badRecord, secrets []string) {
	t.Helper()
	var le *LoadError
	if !errors.As(err, &le) {
		t.Fatalf("err = %v, want a *LoadError", err)
	}
	if !errors.Is(err, states.ErrUnreadable) {
		t.Errorf("err does not wrap states.ErrUnreadable")
	}
	if le.Path != where || !strings.Contains(err.Error(), where) {
		t.Errorf("err %q does not name %s", err, where)
	}
	if !strings.Contains(le.Problem, bad.wantProblem) {
		t.Errorf("Problem = %q, want it to say %q", le.Problem, bad.wantProblem)
	}
	assertNoSecret(t, err.Error(), secrets)
	assertNoSecret(t, err.Error(), []string{"SECRET!payload"})
}

// An unreadable record comes back with its version, so the one who fixes
// it (a login) can replace exactly that content, and nothing else.
func TestSave_replacesAnUnreadableRecordOnlyByItsVersion(t *testing.T) {
	ctx := ctxT(t)
	home := t.TempDir()
	writeRaw(t, home, `{"tokens":`, 0o600)
	s := NewFile(home, nil)
	_, v, err := s.Load(ctx)
	if !errors.Is(err, states.ErrUnreadable) {
		t.Fatalf("err = %v", err)
	}
	_, err = s.Save(ctx, managedRecord(t, "rt"), states.NoVersion)
	if !errors.Is(err, states.ErrConflict) {
		t.Errorf("NoVersion over an unreadable record: err = %v, want ErrConflict", err)
	}
	if _, err := s.Save(ctx, managedRecord(t, "rt"), v); err != nil {
		t.Errorf("save with the unreadable record's version: %v", err)
	}
	if _, _, err := s.Load(ctx); err != nil {
		t.Errorf("Load after the repair: %v", err)
	}
}

func TestLoad_notARegularFile(t *testing.T) {
	home := t.TempDir()
	path := filepath.Join(home, AuthFileName)
	if err := mkdirAll(path); err != nil {
		t.Fatal(err)
	}
	_, _, err := NewFile(home, nil).Load(ctxT(t))
	var le *LoadError
	if !errors.As(err, &le) || le.Path != path ||
		!strings.Contains(le.Problem, "not a regular file") {
		t.Errorf("err = %v, want a *LoadError saying it is not a regular file", err)
	}
}

// A file far over the size limit is reported as over it, with its real
// size: the reader stops one byte past the limit, and that count is not the
// size of anything.
func TestLoad_oversizedFileReportsItsRealSize(t *testing.T) {
	home := t.TempDir()
	const size = 20 << 20
	content := `{"OPENAI_API_KEY":"` + fixtureAPIKey + `","pad":"` +
		strings.Repeat("A", size-len(`{"OPENAI_API_KEY":"`+fixtureAPIKey+`","pad":""}`)) + `"}`
	if len(content) != size {
		t.Fatalf("test content is %d bytes, want %d", len(content), size)
	}
	path := writeRaw(t, home, content, 0o600)

	_, v, err := NewFile(home, nil).Load(ctxT(t))
	var le *LoadError
	if !errors.As(err, &le) || le.Path != path {
		t.Fatalf("err = %v, want a *LoadError for %s", err, path)
	}
	if !strings.Contains(le.Problem, "larger than 1 MiB") {
		t.Errorf("Problem = %q, want it to say the record is larger than 1 MiB", le.Problem)
	}
	if !strings.Contains(le.Problem, "20971520 bytes") {
		t.Errorf("Problem = %q, want it to give the file's size, 20971520 bytes", le.Problem)
	}
	if strings.Contains(le.Problem, strconv.Itoa(maxRecordSize+1)) {
		t.Errorf("Problem = %q gives the read cap plus one as the size", le.Problem)
	}
	if want := versionOf([]byte(content), true); v != want {
		t.Errorf("version = %q, want the hash of the whole file", v)
	}
	assertNoSecret(t, err.Error(), fixtureSecrets(t))
}

// A record that sets no auth_mode and holds neither a key nor tokens is
// unreadable, and the error says what is (not) there instead of naming the
// mode Codex's inference would give it, which the file never mentions.
func TestLoad_recordWithNeitherKeyNorTokens(t *testing.T) {
	for _, content := range []string{
		`{}`,
		`{"OPENAI_API_KEY":null,"tokens":null,"last_refresh":null}`,
		`{"OPENAI_API_KEY":null}`,
		`{"tokens":null,"last_refresh":"2025-10-01T12:34:56Z","other":1}`,
	} {
		t.Run(content, func(t *testing.T) {
			home := t.TempDir()
			path := writeRaw(t, home, content, 0o600)
			rec, v, err := NewFile(home, nil).Load(ctxT(t))
			var le *LoadError
			if !errors.As(err, &le) || le.Path != path || !errors.Is(err, states.ErrUnreadable) {
				t.Fatalf("err = %v, want a *LoadError for %s wrapping ErrUnreadable", err, path)
			}
			if !strings.Contains(le.Problem, "neither an API key") ||
				!strings.Contains(le.Problem, "nor tokens") {
				t.Errorf("Problem = %q, want it to say there is neither an API key nor tokens",
					le.Problem)
			}
			for _, unsaid := range []string{"auth mode", "chatgpt"} {
				if strings.Contains(le.Problem, unsaid) {
					t.Errorf("Problem = %q names a mode the file does not set", le.Problem)
				}
			}
			if !rec.IsZero() || v != versionOf([]byte(content), true) {
				t.Errorf("Load = %v, %q; want the zero record and the content's version",
					rec.Mode, v)
			}
		})
	}
}

// An inferred API-key record (a key, no auth_mode) with an empty key is
// described without naming the inferred mode either.
func TestLoad_inferredAPIKeyRecordWithAnEmptyKey(t *testing.T) {
	_, err := parseDocument([]byte(`{"OPENAI_API_KEY":"","tokens":null}`))
	if err == nil || !strings.Contains(err.Error(), "OPENAI_API_KEY is empty") ||
		strings.Contains(err.Error(), "auth mode") {
		t.Errorf("err = %v, want it to say OPENAI_API_KEY is empty, naming no auth mode", err)
	}
}
