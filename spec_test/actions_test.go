package spec_test

import (
	"context"
	"fmt"
	"sync"
	"time"

	"pgregory.net/rapid"

	"github.com/credfsm/credfsm/engine/enginetest"
	"github.com/credfsm/credfsm/states"
)

// The suite's actions. Their names sort from the simplest (moving a clock)
// to the most involved (another process at work), which is the order rapid
// prefers when it shrinks a failing sequence.
func (w *world) actions() map[string]func(*rapid.T) {
	acts := map[string]func(*rapid.T){
		"":                w.invariants,
		"a clock":         func(t *rapid.T) { w.run(w.clockAction(t)) },
		"b token":         func(t *rapid.T) { w.run(w.tokenAction(t)) },
		"c 401":           func(t *rapid.T) { w.run(w.unauthorizedAction(t)) },
		"d refresh":       func(t *rapid.T) { w.run(w.refreshAction(t)) },
		"e burst":         func(t *rapid.T) { w.run(w.burstAction(t)) },
		"f login":         func(t *rapid.T) { w.run(w.loginAction(t)) },
		"g logout":        func(t *rapid.T) { w.run(w.logoutAction(t)) },
		"h reload":        func(t *rapid.T) { w.run(w.reloadAction(t)) },
		"i restart":       func(t *rapid.T) { w.run(w.restartAction(t)) },
		"j other process": func(t *rapid.T) { w.run(w.otherAction(t)) },

		// Directed sequences: each sets up a rare situation and then makes
		// the call that meets it, so that a run of the default size reaches
		// every rule. (rapid draws the first and the last key more often
		// than the others; the last is the one with the most variants.)
		"k stale, then tokens":      func(t *rapid.T) { w.run(w.turnStaleAction(t)) },
		"l failure, then 401":       func(t *rapid.T) { w.run(w.failureThen401Action(t)) },
		"m save fails, then reload": func(t *rapid.T) { w.run(w.saveFailsAction(t)) },
		"n rejected, then reload":   func(t *rapid.T) { w.run(w.rejectedAction(t)) },
		"o restricted session":      func(t *rapid.T) { w.run(w.restrictedAction(t)) },
		"p other, then ours":        func(t *rapid.T) { w.run(w.otherThenOursAction(t)) },
	}
	for key, f := range acts {
		if key != "" {
			acts[key] = func(t *rapid.T) {
				start := time.Now()
				f(t)
				w.cov.ran(key, time.Since(start))
			}
		}
	}
	return acts
}

// scene is a login that a directed action makes first, so that the machine
// holds what the action needs; when it holds that already, there is none.
type scene struct {
	name   string // "" when there is no login
	login  func()
	sim    func(*sim)
	record states.Record // the credential the machine holds afterwards
}

// needTokens skips a directed action whose scene no login can set: when
// the restrictions in force refuse OAuth tokens.
func (w *world) needTokens(t *rapid.T) {
	if w.policy.ForcedMethod == "api" {
		t.Skip("OAuth tokens are forbidden")
	}
}

// tokens returns the scene for an action that needs OAuth tokens: managed
// ones, or either kind when managed is false; fresh ones that turn stale
// later, when fresh is set.
func (w *world) tokens(t *rapid.T, managed, fresh bool) scene {
	m := &w.sim.model
	at, ok := m.Policy.StaleAt(m.Record)
	has := (m.State == states.Fresh || m.State == states.Stale) &&
		(m.Record.Mode == states.ModeManaged || (!managed && m.Record.Mode == states.ModeExternal)) &&
		(!fresh || (m.State == states.Fresh && ok && at.After(w.sim.now)))
	if has {
		return scene{login: func() {}, sim: func(*sim) {}, record: m.Record}
	}
	host := !managed && rapid.Bool().Draw(t, "host-managed")
	ts := w.issue(mainAccount)
	sc := scene{name: "login with tokens, ", record: w.managedRecord(ts, false)}
	sc.login = func() { w.checkErr(w.m.LoginTokens(ctx, ts.IDToken, ts.AccessToken, ts.RefreshToken)) }
	if host {
		sc.name, sc.record = "login with host tokens, ", w.hostRecord(ts)
		sc.login = func() { w.checkErr(w.m.LoginExternal(ctx, ts.IDToken, ts.AccessToken)) }
	}
	sc.record.LastRefresh = w.clock.Now()
	rec := sc.record
	sc.sim = func(s *sim) { s.login(rec) }
	return sc
}

// turnStaleAction lets fresh tokens turn stale (or expire) without the
// timer noticing first: the clock stops exactly at the stale moment, where
// the timer finds them not yet stale, then moves on. Two token requests
// follow.
func (w *world) turnStaleAction(t *rapid.T) action {
	w.needTokens(t)
	f := drawFaults(t)
	f.store = ""
	sc := w.tokens(t, false, true)
	how := rapid.SampledFrom([]string{"stale", "expired"}).Draw(t, "how far")
	second := rapid.SampledFrom([]string{"token request", "401 for the current token"}).Draw(t, "then")
	staleAt, _ := w.sim.model.Policy.StaleAt(sc.record)
	targets := []time.Time{staleAt, staleAt.Add(time.Second)}
	if exp := sc.record.AccessExpiry; how == "expired" && !exp.IsZero() {
		targets = []time.Time{exp.Add(time.Second)}
	}
	return action{
		name:      sc.name + "clock until the tokens are " + how + ", then a token request and a " + second,
		faults:    f,
		before:    sc.login,
		simBefore: sc.sim,
		real: func() []result {
			for _, at := range targets {
				if err := w.clock.Set(at); err != nil {
					w.t.Fatal(err)
				}
			}
			first := w.callToken()
			if second == "token request" {
				return []result{first, w.callToken()}
			}
			return []result{first, w.callObserve(first.Token)}
		},
		sim: func(s *sim) []result {
			for _, at := range targets {
				s.advance(at)
			}
			first := s.token()
			if second == "token request" {
				return []result{first, s.token()}
			}
			return []result{first, s.observe(first.Token)}
		},
	}
}

// failureThen401Action makes a refresh fail in a way that may pass (the
// server fails, the host fails, or another process holds the store lock),
// then reports a 401 for the current token and asks for a token during the
// backoff.
func (w *world) failureThen401Action(t *rapid.T) action {
	w.needTokens(t)
	var transient []enginetest.RefreshOutcome
	for _, o := range enginetest.RefreshOutcomes() {
		if o.Class == enginetest.RefreshTransient || o.Class == enginetest.RefreshLost {
			transient = append(transient, o)
		}
	}
	f := faults{
		refresh: rapid.SampledFrom(transient).Draw(t, "failure"),
		host: rapid.SampledFrom([]enginetest.HostClass{enginetest.HostError, enginetest.HostBadIDToken,
			enginetest.HostUnregistered}).Draw(t, "host failure"),
		store: rapid.SampledFrom([]string{"", "", "", "lock held"}).Draw(t, "store fault"),
	}
	sc := w.tokens(t, false, false)
	tok := sc.record.Bearer().Reveal()
	return action{
		name:      sc.name + "refresh that fails, then a 401 for the current token and a token request",
		faults:    f,
		before:    sc.login,
		simBefore: sc.sim,
		real: func() []result {
			return []result{w.callRefresh(), w.callObserve(tok), w.callToken()}
		},
		sim: func(s *sim) []result { return []result{s.refreshNow(), s.observe(tok), s.token()} },
	}
}

// saveFailsAction makes a save fail (a refresh's, or a login's) so that
// the credential lives in memory only, then reloads a store nobody has
// touched since.
func (w *world) saveFailsAction(t *rapid.T) action {
	w.needTokens(t)
	f := faults{refresh: enginetest.RefreshOutcomes()[0], host: enginetest.HostTokens,
		store: rapid.SampledFrom([]string{"save fails", "save fails", "save fails", "lock held"}).
			Draw(t, "store fault")}
	if rapid.Bool().Draw(t, "a login's save") {
		acct := mainAccount
		ts := w.issue(acct)
		rec := w.managedRecord(ts, false)
		rec.LastRefresh = w.clock.Now()
		return action{
			name:   "login whose save fails, then reload",
			faults: f,
			real: func() []result {
				err := w.m.LoginTokens(ctx, ts.IDToken, ts.AccessToken, ts.RefreshToken)
				return []result{{Err: errClass(err)}, {Err: errClass(w.m.Reload(ctx))}}
			},
			sim: func(s *sim) []result { return []result{s.login(rec), s.reload(w.envKey)} },
		}
	}
	return w.refreshThenReload(w.tokens(t, false, false), "refresh whose save fails, then reload", f)
}

// rejectedAction has the provider refuse the refresh token for good, then
// reloads a store that still holds the same credential.
func (w *world) rejectedAction(t *rapid.T) action {
	w.needTokens(t)
	var permanent []enginetest.RefreshOutcome
	for _, o := range enginetest.RefreshOutcomes() {
		if o.Class == enginetest.RefreshPermanent {
			permanent = append(permanent, o)
		}
	}
	f := faults{refresh: rapid.SampledFrom(permanent).Draw(t, "refusal")}
	return w.refreshThenReload(w.tokens(t, true, false), "refresh refused for good, then reload", f)
}

// refreshThenReload sets the scene, forces a refresh under the faults f,
// then reloads the store.
func (w *world) refreshThenReload(sc scene, name string, f faults) action {
	return action{
		name:      sc.name + name,
		faults:    f,
		before:    sc.login,
		simBefore: sc.sim,
		real: func() []result {
			r := w.callRefresh()
			return []result{r, {Err: errClass(w.m.Reload(ctx))}}
		},
		sim: func(s *sim) []result { return []result{s.refreshNow(), s.reload(w.envKey)} },
	}
}

// restrictedAction runs a short restricted session and comes back: it
// restarts under a restriction, signs in with tokens the restriction
// allows, meets tokens it forbids (the host answers with another
// workspace's, or another process signs in to another workspace or with an
// API key), signs out, and restarts as before.
func (w *world) restrictedAction(t *rapid.T) action {
	variant := rapid.SampledFrom([]string{"host switches workspace", "other process switches workspace",
		"other process writes an api key"}).Draw(t, "what is forbidden")
	every := rapid.Bool().Draw(t, "step every request")
	back, backEvery, backEnv := w.policy, w.every, w.envKey
	p := enginetest.Policy{Skew: w.policy.Skew, ForcedWorkspace: enginetest.WorkspaceMain}
	if variant == "other process writes an api key" {
		p = enginetest.Policy{Skew: w.policy.Skew, ForcedMethod: "chatgpt"}
	}
	ts := w.issue(mainAccount)
	var f faults
	rec := w.managedRecord(ts, false)
	login := func() error { return w.m.LoginTokens(ctx, ts.IDToken, ts.AccessToken, ts.RefreshToken) }
	do, model := func() {}, func(*sim) {}
	switch variant {
	case "host switches workspace":
		f.host = enginetest.HostOtherWorkspace
		rec = w.hostRecord(ts)
		login = func() error { return w.m.LoginExternal(ctx, ts.IDToken, ts.AccessToken) }
	case "other process switches workspace":
		do, model = w.other("signs in to the other workspace")
	default:
		do, model = w.other("writes an api key")
	}
	rec.LastRefresh = w.clock.Now()
	restart := func(p enginetest.Policy, every bool, env string) {
		if err := w.m.Close(); err != nil {
			w.t.Fatalf("Close: %v", err)
		}
		w.policy, w.every, w.envKey = p, every, env
		w.startManager()
	}
	simRestart := func(s *sim, p enginetest.Policy, every bool, env string) {
		if r := s.restart(p, every, env); r.Err != "" {
			s.problem("the sim could not load: %s", r.Err)
		}
	}
	return action{
		name:   fmt.Sprintf("restricted session (%+v): sign in, %s, refresh, sign out", p, variant),
		faults: f,
		real: func() []result {
			restart(p, every, "")
			out := []result{{Err: errClass(login())}}
			do()
			out = append(out, w.callRefresh())
			_, err := w.m.Logout(ctx)
			restart(back, backEvery, backEnv)
			return append(out, result{Err: errClass(err)})
		},
		sim: func(s *sim) []result {
			simRestart(s, p, every, "")
			out := []result{s.login(rec)}
			model(s)
			out = append(out, s.refreshNow(), s.logout())
			simRestart(s, back, backEvery, backEnv)
			return out
		},
	}
}

var ctx = context.Background()

// clockAction moves the clock: by a drawn amount, or exactly to the moment
// the tokens turn stale (where the timer fires but finds them not yet
// stale), just past it, or just past the end of a backoff.
func (w *world) clockAction(t *rapid.T) action {
	kind := rapid.SampledFrom([]string{"by", "by", "by", "to stale", "past stale", "past backoff"}).
		Draw(t, "how")
	d := enginetest.Jumps().Draw(t, "jump")
	now := w.sim.now
	targets := []time.Time{now.Add(d)}
	name := fmt.Sprintf("clock +%s", d)
	m := &w.sim.model
	staleAt, ok := m.Policy.StaleAt(m.Record)
	switch {
	case kind == "to stale" && ok && staleAt.After(now):
		targets, name = []time.Time{staleAt}, "clock to the stale moment"
	case kind == "past stale" && ok && staleAt.After(now):
		targets, name = []time.Time{staleAt, staleAt.Add(time.Second)}, "clock to the stale moment, then 1s on"
	case kind == "past backoff" && m.RetryAt.After(now):
		end := m.RetryAt
		if w.sim.backoffEnd.After(end) {
			end = w.sim.backoffEnd
		}
		targets, name = []time.Time{end.Add(time.Second)}, "clock past the backoff"
	}
	return action{
		name: name,
		real: func() []result {
			for _, at := range targets {
				if err := w.clock.Set(at); err != nil {
					w.t.Fatal(err)
				}
			}
			return nil
		},
		sim: func(s *sim) []result {
			for _, at := range targets {
				s.advance(at)
			}
			return nil
		},
	}
}

func (w *world) tokenAction(t *rapid.T) action {
	return action{
		name:   "token",
		faults: drawFaults(t),
		real:   func() []result { return []result{w.callToken()} },
		sim:    func(s *sim) []result { return []result{s.token()} },
	}
}

// tokenFor picks the token a 401 is about: the current one, one handed
// out earlier, or one the manager never issued.
func (w *world) tokenFor(t *rapid.T, label string) (string, string) {
	switch rapid.SampledFrom([]string{"current", "older", "unknown", "current"}).Draw(t, label) {
	case "older":
		cur := w.sim.bearer()
		for i := len(w.handed) - 1; i >= 0; i-- {
			if w.handed[i] != cur {
				return w.handed[i], "an older token"
			}
		}
		return "", "no token"
	case "unknown":
		return "tok-never-issued", "an unknown token"
	}
	return w.sim.bearer(), "the current token"
}

func (w *world) unauthorizedAction(t *rapid.T) action {
	tok, what := w.tokenFor(t, "token")
	return action{
		name:   "401 for " + what,
		faults: drawFaults(t),
		real:   func() []result { return []result{w.callObserve(tok)} },
		sim:    func(s *sim) []result { return []result{s.observe(tok)} },
	}
}

func (w *world) refreshAction(t *rapid.T) action {
	return action{
		name:   "refresh",
		faults: drawFaults(t),
		real:   func() []result { return []result{w.callRefresh()} },
		sim:    func(s *sim) []result { return []result{s.refreshNow()} },
	}
}

// joiner is one call of a burst.
type joiner struct {
	kind  string // "token", "401", "refresh"
	token string // for a 401
}

// burstAction starts a flight (a refresh, or a 401 or token request that
// starts one) and, while it is held at the token server or the host, makes
// more calls that must join it rather than start their own. Holding the
// flight makes the interleaving deterministic. When the flight has no
// point to hold it at (it ends before any request), the other calls are
// made after it instead.
func (w *world) burstAction(t *rapid.T) action {
	if st := w.sim.model.State; st != states.Fresh && st != states.Stale {
		t.Skip("a burst needs tokens")
	}
	f := drawFaults(t)
	primaryKind := rapid.SampledFrom([]string{"refresh", "401", "token"}).Draw(t, "first call")
	n := rapid.IntRange(1, 4).Draw(t, "joiners")
	var joiners []joiner
	for i := range n {
		k := rapid.SampledFrom([]string{"token", "401", "refresh"}).Draw(t, fmt.Sprintf("joiner %d", i))
		j := joiner{kind: k}
		if k == "401" {
			j.token, _ = w.tokenFor(t, fmt.Sprintf("joiner %d token", i))
		}
		joiners = append(joiners, j)
	}

	// The first call must start a flight; a refresh always does in fresh
	// or stale.
	primary := joiner{kind: primaryKind, token: w.sim.bearer()}
	probe := w.sim.clone()
	probe.dry = true
	if st, err := probe.model.Step(primary.event(probe)); err != nil || !st.To.Waiting() {
		primary = joiner{kind: "refresh"}
	}

	// Will the flight reach the server or the host, where it can be held?
	probe = w.sim.clone()
	probe.dry = true
	w.armSim(probe, f)
	w.armHost(probe, f.host)
	probe.call(primary)
	held := probe.counts.redeems > 0 || probe.counts.hostAsks > 0
	viaHost := probe.counts.redeems == 0

	name := fmt.Sprintf("burst: %s, then %d call(s) %s", primary.kind, n, describeJoiners(joiners))
	if !held {
		name += ", after it"
	}
	return action{
		name:   name,
		faults: f,
		burst:  true,
		real: func() []result {
			if !held {
				out := []result{w.call(primary)}
				for _, j := range joiners {
					out = append(out, w.call(j))
				}
				return out
			}
			var arrived <-chan struct{}
			if viaHost {
				arrived = w.host.hold()
			} else {
				arrived = w.wire.Hold()
			}
			results := make([]result, 1+len(joiners))
			var wg sync.WaitGroup
			primaryDone := make(chan struct{})
			mark := len(w.logs.Transitions())
			wg.Go(func() {
				defer close(primaryDone)
				results[0] = w.call(primary)
			})
			select {
			case <-arrived:
			case <-primaryDone:
				// The flight ended without reaching the hold: the
				// comparison will say how; the other calls come after.
				w.host.release()
				w.wire.Release()
				for i, j := range joiners {
					results[1+i] = w.call(j)
				}
				return results
			case <-time.After(waitLimit):
				w.t.Fatalf("the burst's flight never reached the point where it is held")
			}
			for i, j := range joiners {
				wg.Go(func() { results[1+i] = w.call(j) })
			}
			// Wait until every other call has joined the flight.
			deadline := time.Now().Add(waitLimit)
			for joined(w.logs.Transitions()[mark:]) < len(joiners) && time.Now().Before(deadline) {
				time.Sleep(100 * time.Microsecond)
			}
			if viaHost {
				w.host.release()
			} else {
				w.wire.Release()
			}
			wg.Wait()
			return results
		},
		sim: func(s *sim) []result {
			if !held {
				out := []result{s.call(primary)}
				for _, j := range joiners {
					out = append(out, s.call(j))
				}
				return out
			}
			return s.burst(primary, joiners)
		},
	}
}

func describeJoiners(js []joiner) string {
	var s []string
	for _, j := range js {
		s = append(s, j.kind)
	}
	return fmt.Sprint(s)
}

// joined counts the steps in which a call joined a flight under way.
func joined(ts []enginetest.LoggedTransition) int {
	n := 0
	for _, t := range ts {
		waiting := t.From == states.Refreshing.String() || t.From == states.ExternalRefresh.String()
		ask := t.Event == states.KindTokenRequested.String() || t.Event == states.KindUnauthorized.String() ||
			t.Event == states.KindRefreshRequested.String()
		if waiting && t.To == t.From && ask {
			n++
		}
	}
	return n
}

func (w *world) call(j joiner) result {
	switch j.kind {
	case "token":
		return w.callToken()
	case "401":
		return w.callObserve(j.token)
	}
	return w.callRefresh()
}

// event is the first event a call steps.
func (j joiner) event(s *sim) states.Event {
	switch j.kind {
	case "token":
		return states.TokenRequested{At: s.now}
	case "401":
		gen := s.model.Generation
		if j.token == "" || j.token != s.bearer() {
			gen--
		}
		return states.Unauthorized{At: s.now, Generation: gen}
	}
	return states.RefreshRequested{At: s.now}
}

func (s *sim) call(j joiner) result {
	switch j.kind {
	case "token":
		return s.token()
	case "401":
		return s.observe(j.token)
	}
	return s.refreshNow()
}

// burst is a held flight: the first call's step, every other call's step
// while it waits, the flight, and then each call's answer (a token request
// steps once more first).
func (s *sim) burst(primary joiner, joiners []joiner) []result {
	before := s.bearer()
	st, err := s.model.Step(primary.event(s))
	if err != nil {
		return []result{{Err: errClass(err)}}
	}
	s.trace = append(s.trace, st)
	s.atHold = func() {
		for _, j := range joiners {
			js, err := s.model.Step(j.event(s))
			if err != nil {
				s.problem("a joiner's event was refused: %v", err)
				continue
			}
			s.trace = append(s.trace, js)
		}
	}
	s.run(st.Commands)
	if s.atHold != nil {
		s.atHold = nil
		s.problem("the flight never reached the point where the burst holds it")
	}

	answer := func(j joiner, token string) result {
		switch j.kind {
		case "token":
			return s.token()
		case "401":
			return s.decide(token)
		}
		switch s.model.State {
		case states.Fresh:
			return result{}
		case states.APIKey:
			return result{Err: "not refreshable"}
		case states.Stale:
			return result{Err: "transient"}
		}
		return result{Err: s.serve().Err}
	}
	// A token request after its wait steps again: the hot path is only
	// taken on entry.
	every := s.every
	s.every = true
	defer func() { s.every = every }()
	out := []result{answer(primary, before)}
	for _, j := range joiners {
		out = append(out, answer(j, j.token))
	}
	return out
}

// --- signing in and out, reloading, restarting -----------------------------------

func (w *world) loginAction(t *rapid.T) action {
	f := drawFaults(t)
	kind := rapid.SampledFrom([]string{"api key", "tokens", "host tokens", "old tokens", "opaque tokens",
		"other workspace", "host tokens, other workspace", "same api key", "expired tokens"}).Draw(t, "login with")
	// Expired tokens are old ones, signed in with once the clock has passed
	// their expiry.
	var wait []time.Time
	if kind == "expired tokens" {
		if exp := w.stash[0].AccessExpiry; !exp.Before(w.clock.Now()) {
			wait = []time.Time{exp.Add(time.Second)}
		}
		kind = "old tokens"
	}
	now := w.clock.Now()
	if len(wait) > 0 {
		now = wait[0]
	}
	var rec states.Record
	var do func() error
	switch kind {
	case "api key", "same api key":
		rec = w.apiKeyRecord()
		if kind == "same api key" && w.sim.model.Record.Mode == states.ModeAPIKey {
			rec = w.sim.model.Record
		}
		key := rec.APIKey.Reveal()
		do = func() error { return w.m.LoginAPIKey(ctx, " "+key+"\n") }
	case "host tokens", "host tokens, other workspace":
		acct := mainAccount
		if kind != "host tokens" {
			acct = otherAccount
		}
		ts := w.issue(acct)
		rec = w.hostRecord(ts)
		do = func() error { return w.m.LoginExternal(ctx, ts.IDToken, ts.AccessToken) }
	default:
		acct := mainAccount
		if kind == "other workspace" {
			acct = otherAccount
		}
		ts := w.issue(acct)
		if kind == "old tokens" {
			ts, w.stash = w.stash[0], append(w.stash[1:], ts)
		}
		rec = w.managedRecord(ts, kind == "opaque tokens")
		access := rec.Tokens.AccessToken.Reveal()
		do = func() error { return w.m.LoginTokens(ctx, ts.IDToken, access, ts.RefreshToken) }
	}
	rec.LastRefresh = time.Time{}
	if rec.Mode != states.ModeAPIKey {
		rec.LastRefresh = now
	}
	name := "login with " + kind
	if len(wait) > 0 {
		name = "clock past the expiry of old tokens, " + name
	}
	return action{
		name:   name,
		faults: f,
		real: func() []result {
			for _, at := range wait {
				if err := w.clock.Set(at); err != nil {
					w.t.Fatal(err)
				}
			}
			err := do()
			w.checkErr(err)
			return []result{{Err: errClass(err)}}
		},
		sim: func(s *sim) []result {
			for _, at := range wait {
				s.advance(at)
			}
			return []result{s.login(rec)}
		},
	}
}

func (w *world) logoutAction(t *rapid.T) action {
	return action{
		name: "logout",
		real: func() []result {
			_, err := w.m.Logout(ctx)
			w.checkErr(err)
			return []result{{Err: errClass(err)}}
		},
		sim: func(s *sim) []result { return []result{s.logout()} },
	}
}

func (w *world) reloadAction(t *rapid.T) action {
	return action{
		name:   "reload",
		faults: drawFaults(t),
		real: func() []result {
			err := w.m.Reload(ctx)
			w.checkErr(err)
			return []result{{Err: errClass(err)}}
		},
		sim: func(s *sim) []result { return []result{s.reload(w.envKey)} },
	}
}

// restartAction closes the manager and starts a new one on the same home,
// possibly with CODEX_API_KEY set and under other restrictions.
func (w *world) restartAction(t *rapid.T) action {
	p := enginetest.Policy{
		Skew:            w.policy.Skew,
		ForcedMethod:    rapid.SampledFrom([]string{"", "", "chatgpt", "api"}).Draw(t, "forced method"),
		ForcedWorkspace: rapid.SampledFrom([]string{"", "", enginetest.WorkspaceMain}).Draw(t, "forced workspace"),
	}
	every := rapid.Bool().Draw(t, "step every request")
	env := rapid.SampledFrom([]string{"", "key"}).Draw(t, "environment")
	envKey := ""
	if env == "key" {
		envKey = "sk-test-env-" + fingerprint(w.home+fmt.Sprint(len(w.history)))
		w.secrets.Add(envKey)
		w.apiKeys[envKey] = true
	}
	name := fmt.Sprintf("restart (forced method %q, workspace %q, env key %v, every request %v)",
		p.ForcedMethod, p.ForcedWorkspace, envKey != "", every)
	return action{
		name: name,
		real: func() []result {
			if err := w.m.Close(); err != nil {
				w.t.Fatalf("Close: %v", err)
			}
			w.policy, w.every, w.envKey = p, every, envKey
			w.startManager()
			return nil
		},
		sim: func(s *sim) []result {
			if r := s.restart(p, every, envKey); r.Err != "" {
				s.problem("the sim could not load: %s", r.Err)
			}
			return nil
		},
	}
}

// --- another process -----------------------------------------------------------

// otherKinds are what another process can do to the store, in the order
// rapid draws most often.
var otherKinds = []string{"writes an api key", "writes stale tokens", "signs out", "corrupts the file",
	"rotates the tokens", "signs in", "signs in to the other workspace", "re-saves the record"}

// otherAction is another process sharing the home: it refreshes the tokens
// (under the lock, as credfsm does), re-saves them, signs in to another
// account or with old tokens or an API key, signs out, or leaves garbage.
func (w *world) otherAction(t *rapid.T) action {
	kind := rapid.SampledFrom(otherKinds).Draw(t, "other process")
	do, model := w.other(kind)
	return action{
		name: "other process " + kind,
		real: func() []result { do(); return nil },
		sim:  func(s *sim) []result { model(s); return nil },
	}
}

// otherThenOursAction is another process changing the store, then a refresh
// here: the moment the re-read under the lock exists for.
func (w *world) otherThenOursAction(t *rapid.T) action {
	w.needTokens(t)
	kind := rapid.SampledFrom(otherKinds).Draw(t, "other process")
	f := drawFaults(t)
	f.store = ""
	sc := w.tokens(t, true, false)
	do, model := w.other(kind)
	return action{
		name:      sc.name + "other process " + kind + ", then refresh",
		faults:    f,
		before:    func() { sc.login(); do() },
		simBefore: func(s *sim) { sc.sim(s); model(s) },
		real:      func() []result { return []result{w.callRefresh()} },
		sim:       func(s *sim) []result { return []result{s.refreshNow()} },
	}
}

// other returns what another process does, for real and on the sim.
func (w *world) other(kind string) (func(), func(*sim)) {
	now := w.clock.Now()
	switch kind {
	case "rotates the tokens":
		mark := w.otherWire.Count()
		return w.otherRotate, func(s *sim) {
			exs := w.otherWire.Exchanges()
			s.otherRotate(exs[min(mark, len(exs)):])
		}
	case "re-saves the record":
		return func() {
				unlock := w.holdLock()
				defer unlock()
				rec, v, err := w.file.Load(ctx)
				if err != nil || rec.IsZero() {
					return
				}
				rec.LastRefresh = now
				if _, err := w.file.Save(ctx, rec, v); err != nil {
					w.t.Fatalf("other process: %v", err)
				}
			}, func(s *sim) {
				if s.store.corrupt == 0 && !s.store.file.IsZero() {
					s.store.file.LastRefresh = now
				}
			}
	case "signs in", "signs in to the other workspace":
		acct := mainAccount
		if kind != "signs in" {
			acct = otherAccount
		}
		rec := w.managedRecord(w.issue(acct), false)
		return func() { w.otherSave(rec) }, func(s *sim) { s.store.writeFile(rec) }
	case "writes stale tokens":
		rec := w.managedRecord(w.issue(mainAccount), true)
		return func() { w.otherSave(rec) }, func(s *sim) { s.store.writeFile(rec) }
	case "writes an api key":
		rec := w.apiKeyRecord()
		return func() { w.otherSave(rec) }, func(s *sim) { s.store.writeFile(rec) }
	case "signs out":
		return func() {
				unlock := w.holdLock()
				defer unlock()
				if _, err := w.file.Delete(ctx); err != nil {
					w.t.Fatalf("other process: %v", err)
				}
			}, func(s *sim) {
				s.store.file, s.store.corrupt = states.Record{}, 0
			}
	}
	w.corruptions++
	n := w.corruptions
	return func() { w.corrupt(n) }, func(s *sim) { s.store.file, s.store.corrupt = states.Record{}, n }
}

// otherRotate is another credfsm process refreshing: under the lock it
// re-reads the file, redeems the refresh token it finds and saves the
// result.
func (w *world) otherRotate() {
	unlock := w.holdLock()
	defer unlock()
	rec, v, err := w.file.Load(ctx)
	if err != nil || rec.Mode != states.ModeManaged {
		return
	}
	g, err := w.otherClient.Redeem(ctx, rec.Tokens.RefreshToken)
	if err != nil {
		return
	}
	w.secrets.Add(g.AccessToken.Reveal(), g.RefreshToken.Reveal(), g.IDToken.Reveal())
	next := applyGrant(rec, g, w.clock.Now())
	if _, err := w.file.Save(ctx, next, v); err != nil {
		w.t.Fatalf("other process: %v", err)
	}
}

// applyGrant is how the other process takes new tokens.
func applyGrant(rec states.Record, g states.Grant, now time.Time) states.Record {
	rec.Tokens.AccessToken = g.AccessToken
	rec.AccessExpiry = g.AccessExpiry
	if !g.RefreshToken.IsZero() {
		rec.Tokens.RefreshToken = g.RefreshToken
	}
	if !g.IDToken.IsZero() && g.IDTokenErr == nil {
		rec.Tokens.IDToken, rec.Claims = g.IDToken, g.Claims
	}
	rec.LastRefresh = now
	return rec
}

func (s *sim) otherRotate(exs []enginetest.Exchange) {
	if s.store.corrupt > 0 || s.store.file.Mode != states.ModeManaged {
		return
	}
	rt := s.store.file.Tokens.RefreshToken.Reveal()
	ex := enginetest.Exchange{Sent: rt, Access: "dry-access", Refresh: "dry-refresh", IDToken: "dry-id"}
	if !s.dry {
		if len(exs) != 1 || exs[0].Sent != rt {
			s.problem("the other process did not redeem the stored refresh token once")
			return
		}
		ex = exs[0]
	}
	g, refused := s.server.redeem(rt, ex, s.now)
	if refused != states.ReasonNone {
		return
	}
	s.store.writeFile(applyGrant(s.store.file, g, s.now))
}
