package engine_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/credfsm/credfsm/oauth"
	"github.com/credfsm/credfsm/states"
)

// TestManagerLogging captures everything the manager, the runner and the
// store log at debug level through a whole life — OAuth tokens loaded,
// refreshed, recovered, revoked, replaced and signed out, then an API key,
// then host-managed tokens whose host fails quoting the token — and checks
// that no key or token, old or new, appears in the log or in any error
// returned; and that each transition is logged at debug, each redemption at
// info and each permanent failure at warn.
func TestManagerLogging(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	run := runLifecycle(t, r)
	secrets, errs, transitions := run.secrets, run.errs, run.transitions

	m := r.start(r.config())
	rules := watch(t, m)
	note := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}

	const key = "sk-test-logging-0123456789abcdef"
	secrets = append(secrets, key)
	note(m.LoginAPIKey(ctx, key))
	note(m.Observe(ctx, key, http.StatusUnauthorized, nil).Err)
	note(m.Refresh(ctx))
	_, err := m.Logout(ctx)
	note(err)

	host := hostSignIn(t, r, m, mainAccount)
	secrets = append(secrets, secretsOf(host)...)
	m.SetExternalRefresher(oauth.TokenHostFunc(
		func(context.Context, oauth.HostRequest) (oauth.HostTokens, error) {
			return oauth.HostTokens{}, fmt.Errorf("refused: Bearer %s, id %s", host.AccessToken, host.IDToken)
		}))
	d := m.Observe(ctx, host.AccessToken, http.StatusUnauthorized, nil)
	if d.Err == nil {
		t.Fatal("a failing host did not fail the 401")
	}
	note(d.Err)
	_, err = m.Token(ctx)
	note(err)
	m.Close()
	second := rules.transitions()

	// No secret, nor any part of a JWT, anywhere.
	text := r.logs.String()
	if text == "" {
		t.Fatal("nothing was logged")
	}
	var texts []string
	for _, err := range errs {
		texts = append(texts, err.Error())
	}
	for _, s := range secrets {
		if s == "" {
			continue
		}
		for _, part := range append([]string{s}, jwtParts(s)...) {
			if strings.Contains(text, part) {
				t.Errorf("the log holds a secret (%s)", fingerprint(s))
			}
			for _, e := range texts {
				if strings.Contains(e, part) {
					t.Errorf("an error holds a secret (%s): the error is %d bytes", fingerprint(s), len(e))
				}
			}
		}
	}

	// Each transition at debug, in order; redemptions at info; permanent
	// failures at warn.
	var logged []string
	redemptions, permanent := 0, 0
	for _, l := range r.logs.lines(t) {
		switch l.str("msg") {
		case "transition":
			if l.str("level") != "DEBUG" {
				t.Errorf("transition %s logged at %s", l.str("rule"), l.str("level"))
			}
			logged = append(logged, l.str("rule"))
		case "refreshing tokens":
			if l.str("level") != "INFO" {
				t.Errorf("a redemption logged at %s", l.str("level"))
			}
			redemptions++
		case "credential failed permanently":
			if l.str("level") != "WARN" || l.str("reason") == "" {
				t.Errorf("a permanent failure logged as %v", l)
			}
			permanent++
		}
	}
	// Each manager loaded its empty home in New, before anyone could
	// subscribe.
	want := append([]string{"load_nothing"}, ruleIDs(transitions)...)
	want = append(append(want, "load_nothing"), ruleIDs(second)...)
	transitions = append(transitions, second...)
	if diff := cmp.Diff(want, logged); diff != "" {
		t.Errorf("transitions logged (-seen by subscribers +logged):\n%s", diff)
	}
	if want := r.srv.Stats().Requests; redemptions != want || want == 0 {
		t.Errorf("%d redemptions logged, the token server saw %d", redemptions, want)
	}
	wantPermanent := 0
	for _, tr := range transitions {
		if tr.To == states.FailedPermanent && tr.From != states.FailedPermanent {
			wantPermanent++
		}
	}
	if permanent != wantPermanent || permanent == 0 {
		t.Errorf("%d permanent failures logged at warn, want %d", permanent, wantPermanent)
	}
}

// jwtParts returns the payload and signature of a JWT, each enough to
// leak it; nil for anything else.
func jwtParts(s string) []string {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return nil
	}
	return parts[1:]
}
