package main

import (
	"bytes"
	"context"
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

	"github.com/credfsm/credfsm/oauth"
	"github.com/credfsm/credfsm/oauth/oauthtest"
	"github.com/credfsm/credfsm/states"
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
	return runWhileRedeeming(t, srv, set, cmd, stdout, stderr, func(home, auth string) {
		if err := os.Remove(auth); err != nil {
			t.Error(err)
		}
	})
}

// runWhileRedeeming runs credctl cmd on a home holding set, with the token
// server behind a proxy that calls other when the redemption arrives, before
// passing it on.
func runWhileRedeeming(t *testing.T, srv *oauthtest.Server, set oauthtest.TokenSet, cmd string,
	stdout, stderr *bytes.Buffer, other func(home, auth string)) (code int, authPath string) {
	t.Helper()
	home := t.TempDir()
	auth := writeAuthJSON(t, home, set)
	proxy := tokenProxy(t, srv, func() { other(home, auth) })
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
	srv, set := serverWithExpiredTokens(t)
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

// serverWithExpiredTokens starts a Codex token server and has it issue
// tokens whose access token expired an hour ago, as if minted two hours
// ago; the server's clock is the real one afterwards.
func serverWithExpiredTokens(t *testing.T) (*oauthtest.Server, oauthtest.TokenSet) {
	t.Helper()
	var mu sync.Mutex
	now := time.Now().Add(-2 * time.Hour)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	srv := oauthtest.NewServer(oauthtest.WithDialect(oauthtest.DialectCodex), oauthtest.WithClock(clock))
	t.Cleanup(srv.Close)
	set := srv.Issue(oauthtest.Account{Email: "dev@example.com", Plan: "pro",
		UserID: "user-test", AccountID: "acct-test"})
	mu.Lock()
	now = time.Now()
	mu.Unlock()
	return srv, set
}

// fingerprintForTest shortens a token for a failure message.
func fingerprintForTest(s string) string {
	if len(s) > 8 {
		return s[:8] + "…"
	}
	return s
}

// codexRefreshes is what the Codex CLI does when it refreshes while credctl
// is redeeming the same refresh token: it takes no lock and redeems the
// token itself first. It saves what it got to auth.json at once, or, with
// late > 0, that long after (credctl's refusal is back by then); torn has
// it write a truncated file first, as a writer that is not atomic leaves
// one for a moment. The second function returns the tokens Codex saved.
func codexRefreshes(t *testing.T, srv *oauthtest.Server, set oauthtest.TokenSet, late time.Duration,
	torn bool) (func(home, auth string), func() oauthtest.TokenSet) {
	t.Helper()
	var mu sync.Mutex
	var saved oauthtest.TokenSet
	wrote := make(chan struct{})
	t.Cleanup(func() { <-wrote }) // the test's home outlives the write
	return func(home, auth string) {
			client, err := oauth.NewClient(srv.CodexProfile())
			if err != nil {
				t.Error(err)
				close(wrote)
				return
			}
			g, err := client.Redeem(context.Background(), states.NewSecret(set.RefreshToken))
			if err != nil {
				t.Errorf("Codex's redemption: %v", err)
				close(wrote)
				return
			}
			mu.Lock()
			saved = oauthtest.TokenSet{IDToken: g.IDToken.Reveal(), AccessToken: g.AccessToken.Reveal(),
				RefreshToken: g.RefreshToken.Reveal(), Account: set.Account}
			mu.Unlock()
			save := func() {
				defer close(wrote)
				if torn {
					if err := os.WriteFile(auth, []byte(`{"auth_mode":"chatgpt","tok`), 0o600); err != nil {
						t.Error(err)
					}
					time.Sleep(late)
				}
				writeAuthJSON(t, home, saved)
			}
			if late == 0 && !torn {
				save()
				return
			}
			go func() {
				if !torn {
					time.Sleep(late)
				}
				save()
			}()
		}, func() oauthtest.TokenSet {
			mu.Lock()
			defer mu.Unlock()
			return saved
		}
}

// TestToken_adoptsWhatCodexSavedAfterARefusal: the provider refuses
// credctl's refresh token as used, because the Codex CLI, which takes no
// lock, redeemed it a moment earlier. Codex saves its tokens before the
// refusal arrives, or just after it, or in two writes with a truncated file
// between: in each case credctl must print the access token Codex saved
// (exit 0), not tell the user to sign in again, and must not redeem
// Codex's new refresh token as well.
func TestToken_adoptsWhatCodexSavedAfterARefusal(t *testing.T) {
	for _, tt := range []struct {
		name string
		late time.Duration
		torn bool
	}{
		{"saved before the refusal", 0, false},
		{"saved after the refusal", 300 * time.Millisecond, false},
		{"saved in two writes", 300 * time.Millisecond, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv, set := serverWithExpiredTokens(t)
			codex, saved := codexRefreshes(t, srv, set, tt.late, tt.torn)

			var stdout, stderr bytes.Buffer
			code, _ := runWhileRedeeming(t, srv, set, "token", &stdout, &stderr, codex)

			if code != exitOK {
				t.Fatalf("exit %d, want 0; stderr: %s", code, stderr.String())
			}
			if got, want := strings.TrimSpace(stdout.String()), saved().AccessToken; got != want {
				t.Errorf("printed %s, want the access token Codex saved (%s)",
					fingerprintForTest(got), fingerprintForTest(want))
			}
			st := srv.Stats()
			if st.Redemptions != 1 || st.ReuseAttempts != 1 {
				t.Errorf("redemptions %d, reuse attempts %d; want Codex's one redemption and "+
					"credctl's one refused attempt", st.Redemptions, st.ReuseAttempts)
			}
		})
	}
}

// TestRefresh_adoptsWhatCodexSavedAfterARefusal: the same race for "credctl
// refresh", which must say what happened and exit 0.
func TestRefresh_adoptsWhatCodexSavedAfterARefusal(t *testing.T) {
	srv := oauthtest.NewServer(oauthtest.WithDialect(oauthtest.DialectCodex))
	t.Cleanup(srv.Close)
	set := srv.Issue(oauthtest.Account{Email: "dev@example.com", Plan: "pro",
		UserID: "user-test", AccountID: "acct-test"})
	codex, saved := codexRefreshes(t, srv, set, 0, false)

	var stdout, stderr bytes.Buffer
	code, auth := runWhileRedeeming(t, srv, set, "refresh", &stdout, &stderr, codex)

	if code != exitOK {
		t.Fatalf("exit %d, want 0; stderr: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "another program had meanwhile saved new tokens") {
		t.Errorf("stdout does not say the tokens were adopted:\n%s", stdout.String())
	}
	rec, _, err := storage.NewFile(filepath.Dir(auth), nil).Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rec.Tokens.RefreshToken.Reveal() != saved().RefreshToken {
		t.Errorf("auth.json no longer holds the refresh token Codex saved")
	}
}

// TestToken_refusalStandsWhenNothingNewIsStored: a refusal with nothing new
// in the store is what it says: exit 3, sign in again, one redemption tried.
func TestToken_refusalStandsWhenNothingNewIsStored(t *testing.T) {
	srv, set := serverWithExpiredTokens(t)
	srv.Inject(oauthtest.Reject(oauth.CodeRefreshTokenReused))

	var stdout, stderr bytes.Buffer
	code, _ := runWhileRedeeming(t, srv, set, "token", &stdout, &stderr, func(string, string) {})

	if code != exitSignIn || stdout.Len() != 0 {
		t.Fatalf("exit %d, stdout %q; want %d and nothing printed (stderr: %s)", code,
			fingerprintForTest(stdout.String()), exitSignIn, stderr.String())
	}
	if got := srv.Stats().Requests; got != 1 {
		t.Errorf("%d requests at the token server, want 1", got)
	}
}

// TestToken_refusalThenUnreadableStoreSaysSo: when, after the refusal, the
// store holds something that cannot be read, that is what credctl reports
// (exit 1, naming the file), not that the refresh token was already used.
func TestToken_refusalThenUnreadableStoreSaysSo(t *testing.T) {
	srv, set := serverWithExpiredTokens(t)
	srv.Inject(oauthtest.Reject(oauth.CodeRefreshTokenReused))

	var stdout, stderr bytes.Buffer
	code, auth := runWhileRedeeming(t, srv, set, "token", &stdout, &stderr, func(_, auth string) {
		if err := os.WriteFile(auth, []byte("not json"), 0o600); err != nil {
			t.Error(err)
		}
	})

	if code != exitError || stdout.Len() != 0 {
		t.Fatalf("exit %d, stdout %q; want %d and nothing printed (stderr: %s)", code,
			fingerprintForTest(stdout.String()), exitError, stderr.String())
	}
	if line := stderr.String(); !strings.Contains(line, "cannot be read") ||
		!strings.Contains(line, auth) || strings.Contains(line, "already used") {
		t.Errorf("stderr %q; want it to say that %s cannot be read", line, auth)
	}
}

// TestToken_lateAnswerIsReported: when the token server answers only after
// --timeout, credctl lets the redemption finish (its answer may hold the
// only live refresh token) and then reports that answer, not a timeout: a
// refusal is exit 3 and prints no token, even one that is still valid; a
// server error is exit 4 with the status.
func TestToken_lateAnswerIsReported(t *testing.T) {
	for _, tt := range []struct {
		name     string
		status   int
		body     string
		wantCode int
		want     string
	}{
		{"refusal", http.StatusUnauthorized, `{"error":{"code":"refresh_token_reused"}}`, exitSignIn,
			"credctl: the token server answered after --timeout ran out: the refresh token was already used"},
		{"server error", http.StatusInternalServerError, `oops`, exitTransient,
			"credctl: the refresh, let finish after --timeout ran out, failed: the access token expired"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				time.Sleep(1500 * time.Millisecond)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			}))
			t.Cleanup(slow.Close)
			_, set := serverWithExpiredTokens(t)
			home := t.TempDir()
			writeAuthJSON(t, home, set)

			var stdout, stderr bytes.Buffer
			code := run([]string{"--home", home, "--token-url", slow.URL + oauthtest.TokenPath,
				"--timeout", "300ms", "token"}, strings.NewReader(""), &stdout, &stderr,
				func(string) string { return "" })
			if code != tt.wantCode || stdout.Len() != 0 {
				t.Fatalf("exit %d, stdout %q; want %d and nothing printed (stderr: %s)", code,
					fingerprintForTest(stdout.String()), tt.wantCode, stderr.String())
			}
			if !strings.HasPrefix(stderr.String(), tt.want) || strings.Count(stderr.String(), "\n") != 1 {
				t.Errorf("stderr %q\nwant one line starting %q", stderr.String(), tt.want)
			}
		})
	}
}

// TestToken_refusedTokensWrittenBackAreNotRedeemedAgain: after the refusal,
// another program rewrites auth.json in place with the same content (the
// file is empty for a moment). The refused refresh token must not look new
// when it comes back: one request reaches the token server, exit 3.
func TestToken_refusedTokensWrittenBackAreNotRedeemedAgain(t *testing.T) {
	srv, set := serverWithExpiredTokens(t)
	srv.Inject(oauthtest.Reject(oauth.CodeRefreshTokenReused))
	done := make(chan struct{})
	t.Cleanup(func() { <-done })

	var stdout, stderr bytes.Buffer
	code, _ := runWhileRedeeming(t, srv, set, "token", &stdout, &stderr, func(_, auth string) {
		before, err := os.ReadFile(auth)
		if err != nil {
			t.Error(err)
			close(done)
			return
		}
		go func() {
			defer close(done)
			time.Sleep(300 * time.Millisecond)
			if err := os.WriteFile(auth, nil, 0o600); err != nil {
				t.Error(err)
			}
			time.Sleep(400 * time.Millisecond)
			if err := os.WriteFile(auth, before, 0o600); err != nil {
				t.Error(err)
			}
		}()
	})

	if code != exitSignIn || stdout.Len() != 0 {
		t.Fatalf("exit %d, stdout %q; want %d and nothing printed (stderr: %s)", code,
			fingerprintForTest(stdout.String()), exitSignIn, stderr.String())
	}
	if got := srv.Stats().Requests; got != 1 {
		t.Errorf("%d requests at the token server, want 1: the refused token was redeemed again", got)
	}
}
