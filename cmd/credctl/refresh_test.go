package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/credfsm/credfsm/oauth/oauthtest"
	"github.com/credfsm/credfsm/storage"
)

// writeAuthJSON writes a Codex auth.json holding set into home.
func writeAuthJSON(t *testing.T, home string, set oauthtest.TokenSet) string {
	t.Helper()
	doc := map[string]any{
		"auth_mode":      "chatgpt",
		"OPENAI_API_KEY": nil,
		"tokens": map[string]any{
			"id_token":      set.IDToken,
			"access_token":  set.AccessToken,
			"refresh_token": set.RefreshToken,
			"account_id":    set.Account.AccountID,
		},
		"last_refresh": time.Now().UTC().Format(time.RFC3339Nano),
	}
	data, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(home, storage.AuthFileName)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// tokenProxy forwards requests to the token server srv after running
// before, once, on the first of them: what another process does while a
// redemption is under way.
func tokenProxy(t *testing.T, srv *oauthtest.Server, before func()) *httptest.Server {
	t.Helper()
	var once sync.Once
	p := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(before)
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		req, err := http.NewRequestWithContext(r.Context(), r.Method, srv.URL+r.URL.RequestURI(),
			bytes.NewReader(body))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		req.Header = r.Header.Clone()
		resp, err := srv.HTTPClient().Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	}))
	t.Cleanup(p.Close)
	return p
}

// runDuringLogout runs credctl cmd on a home holding set, with the token
// server behind a proxy that, when the redemption arrives, does what another
// process's logout does: it clears the store without the lock, as "credctl
// logout" does once its wait for the lock runs out.
func runDuringLogout(t *testing.T, srv *oauthtest.Server, set oauthtest.TokenSet, cmd string,
	stdout, stderr *bytes.Buffer) (code int, authPath string) {
	t.Helper()
	home := t.TempDir()
	auth := writeAuthJSON(t, home, set)
	proxy := tokenProxy(t, srv, func() {
		if err := os.Remove(auth); err != nil {
			t.Error(err)
		}
	})
	code = run([]string{"--home", home, "--token-url", proxy.URL + oauthtest.TokenPath, cmd},
		strings.NewReader(""), stdout, stderr, func(string) string { return "" })
	return code, auth
}

// TestRefresh_unsavedIsAFailure: another process signs out while a refresh
// is under way, so the save of the new tokens finds the store changed and
// is refused. credctl must not claim that the tokens were saved: they live
// only in the credctl process, which exits. It says so on stderr, in one
// line with the reason, and exits 1.
func TestRefresh_unsavedIsAFailure(t *testing.T) {
	srv := oauthtest.NewServer(oauthtest.WithDialect(oauthtest.DialectCodex))
	t.Cleanup(srv.Close)
	set := srv.Issue(oauthtest.Account{Email: "dev@example.com", Plan: "pro",
		UserID: "user-test", AccountID: "acct-test"})

	var stdout, stderr bytes.Buffer
	code, auth := runDuringLogout(t, srv, set, "refresh", &stdout, &stderr)

	if got := srv.Stats().Redemptions; got != 1 {
		t.Fatalf("redemptions = %d, want 1; stderr: %s", got, stderr.String())
	}
	if code != exitError {
		t.Errorf("exit code %d, want %d", code, exitError)
	}
	if strings.Contains(stdout.String(), "saved") {
		t.Errorf("stdout claims a save:\n%s", stdout.String())
	}
	line := stderr.String()
	if strings.Count(line, "\n") != 1 {
		t.Errorf("stderr is not one line:\n%s", line)
	}
	const want = "credctl: the tokens were refreshed, but the new tokens could not be saved ("
	if !strings.HasPrefix(line, want) || !strings.Contains(line, "changed since it was read") {
		t.Errorf("stderr %q\nwant it to start %q and give the reason", line, want)
	}
	for _, secret := range []string{set.IDToken, set.AccessToken, set.RefreshToken, "eyJ"} {
		if strings.Contains(stdout.String()+line, secret) {
			t.Errorf("the output holds a token")
		}
	}
	if _, err := os.Stat(auth); !os.IsNotExist(err) {
		t.Errorf("auth.json is back after the other process's logout (stat: %v)", err)
	}
}

// TestToken_unsavedIsWarned: the same race during the refresh that "credctl
// token" makes for stale tokens. The new access token works and is printed
// (exit 0), but stderr must say that the new tokens were not saved, since
// the refresh token in the store has been spent.
func TestToken_unsavedIsWarned(t *testing.T) {
	var mu sync.Mutex
	now := time.Now().Add(-2 * time.Hour) // tokens minted then have expired
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	srv := oauthtest.NewServer(oauthtest.WithDialect(oauthtest.DialectCodex), oauthtest.WithClock(clock))
	t.Cleanup(srv.Close)
	set := srv.Issue(oauthtest.Account{Email: "dev@example.com", Plan: "pro",
		UserID: "user-test", AccountID: "acct-test"})
	mu.Lock()
	now = time.Now()
	mu.Unlock()
	var stdout, stderr bytes.Buffer
	code, _ := runDuringLogout(t, srv, set, "token", &stdout, &stderr)

	if code != exitOK || strings.TrimSpace(stdout.String()) == "" ||
		strings.TrimSpace(stdout.String()) == set.AccessToken {
		t.Fatalf("exit %d, stdout %q; want the new token and exit 0 (stderr: %s)", code,
			fingerprintForTest(stdout.String()), stderr.String())
	}
	if !strings.Contains(stderr.String(), "could not be saved") {
		t.Errorf("stderr %q does not say the new tokens were not saved", stderr.String())
	}
}

// fingerprintForTest shortens a token for a failure message.
func fingerprintForTest(s string) string {
	if len(s) > 8 {
		return s[:8] + "…"
	}
	return s
}
