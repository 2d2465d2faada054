package spec_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"

	"github.com/credfsm/credfsm/effects"
	"github.com/credfsm/credfsm/engine"
	"github.com/credfsm/credfsm/engine/enginetest"
	"github.com/credfsm/credfsm/oauth"
	"github.com/credfsm/credfsm/oauth/oauthtest"
	"github.com/credfsm/credfsm/states"
	"github.com/credfsm/credfsm/storage"
	"github.com/credfsm/credfsm/transitions"
)

// Time limits of the real world. Only the lock and host timeouts are ever
// waited out, and only when a test provokes them on purpose.
const (
	lockTimeout = 150 * time.Millisecond
	hostTimeout = 500 * time.Millisecond
	waitLimit   = 10 * time.Second
)

// The accounts the token server issues tokens for.
var (
	mainAccount = oauthtest.Account{Email: "dev@example.com", Plan: "pro", UserID: "user-main",
		AccountID: enginetest.WorkspaceMain}
	otherAccount = oauthtest.Account{Email: "ops@example.com", Plan: "team", UserID: "user-other",
		AccountID: enginetest.WorkspaceOther}
)

// world is one run of the Manager suite: a real manager on a temporary home
// with the real file store (behind a FaultStore), a loopback token server
// and a host double, all on one manual clock; a second "process" sharing
// the home; and the sim that predicts it all.
type world struct {
	t   *rapid.T
	cov *coverage

	clock       *enginetest.Clock
	srv         *oauthtest.Server
	wire        *enginetest.Wire
	otherWire   *enginetest.Wire
	otherClient *oauth.Client
	home        string
	store       *enginetest.FaultStore
	file        *storage.File
	logs        *enginetest.Logs
	secrets     enginetest.Secrets
	labels      labels
	checker     *enginetest.Checker
	host        *hostDouble
	table       *transitions.Table
	profile     oauth.Profile

	m      *engine.Manager
	subs   subBuffer // what every manager's subscriber saw
	envKey string
	policy enginetest.Policy
	every  bool

	sim         *sim
	stash       []oauthtest.TokenSet // tokens issued earlier, for logins with old tokens
	handed      []string             // bearers handed out, for 401s about older tokens
	apiKeys     map[string]bool
	keyCount    int
	corruptions int

	// How far the suite has read the log, the wire and the host's handouts.
	logMark, exMark, hostMark int

	mu         sync.Mutex
	violations []string

	history         []string              // the actions so far, for failure messages
	actionExchanges []enginetest.Exchange // this process's requests in the current action
}

// worldOptions are the choices made once per run.
type worldOptions struct {
	lifetime time.Duration
	rotate   bool
	skew     time.Duration
	every    bool
	policy   enginetest.Policy
	initial  string // what the store holds at start
	dialect  string // "codex" or "rfc6749": the refresh protocol spoken
	table    *transitions.Table
}

func drawOptions(t *rapid.T) worldOptions {
	o := worldOptions{
		lifetime: rapid.SampledFrom([]time.Duration{time.Hour, 20 * time.Minute, 24 * time.Hour}).
			Draw(t, "token lifetime"),
		rotate: rapid.SampledFrom([]bool{true, true, false}).Draw(t, "rotation"),
		skew:   rapid.SampledFrom([]time.Duration{0, 0, 45 * time.Minute}).Draw(t, "skew"),
		every:  rapid.Bool().Draw(t, "step every request"),
		initial: rapid.SampledFrom([]string{"nothing", "tokens", "api key", "host tokens", "corrupt"}).
			Draw(t, "store at start"),
		dialect: rapid.SampledFrom([]string{"codex", "codex", "rfc6749"}).Draw(t, "refresh protocol"),
	}
	o.policy = drawPolicy(t)
	o.policy.Skew = o.skew
	return o
}

// drawPolicy draws restrictions, none most of the time.
func drawPolicy(t *rapid.T) enginetest.Policy {
	return enginetest.Policy{
		ForcedMethod:    rapid.SampledFrom([]string{"", "", "", "chatgpt", "api"}).Draw(t, "forced method"),
		ForcedWorkspace: rapid.SampledFrom([]string{"", "", enginetest.WorkspaceMain}).Draw(t, "forced workspace"),
	}
}

func newWorld(t *rapid.T, cov *coverage, o worldOptions) *world {
	home, err := os.MkdirTemp("", "credfsm-spec-")
	if err != nil {
		t.Fatal(err)
	}
	clock := enginetest.NewClock(suiteStart)
	opts := []oauthtest.Option{oauthtest.WithClock(clock.Now), oauthtest.WithLifetime(o.lifetime)}
	if !o.rotate {
		opts = append(opts, oauthtest.WithoutRotation())
	}
	srv := oauthtest.NewServer(opts...)
	stats := func() enginetest.ServerStats {
		s := srv.Stats()
		return enginetest.ServerStats{Requests: s.Requests, Redemptions: s.Redemptions}
	}
	w := &world{
		t: t, cov: cov, clock: clock, srv: srv, home: home,
		wire:      enginetest.NewWire(srv.HTTPClient().Transport, stats),
		otherWire: enginetest.NewWire(srv.HTTPClient().Transport, stats),
		file:      storage.NewFile(home, nil),
		logs:      enginetest.NewLogs(),
		host:      &hostDouble{},
		table:     o.table,
		apiKeys:   map[string]bool{},
		every:     o.every,
		policy:    o.policy,
	}
	real, err := storage.Open(storage.Options{Home: home, Logger: w.logs.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	w.store = enginetest.NewFaultStore(real)
	w.profile = srv.CodexProfile()
	if o.dialect == "rfc6749" {
		w.profile = srv.RFC6749Profile()
	}
	p := w.profile
	w.otherClient, err = oauth.NewClient(p, oauth.WithHTTPClient(&http.Client{Transport: w.otherWire}),
		oauth.WithClock(clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	w.sim = &sim{
		model: *enginetest.NewModel(o.policy),
		every: o.every,
		now:   suiteStart,
		server: simServer{rotate: o.rotate, lifetime: o.lifetime, tokens: map[string]simToken{},
			rfc6749: o.dialect == "rfc6749"},
		host: simHost{registered: true},
	}
	w.checker = enginetest.NewChecker(enginetest.CheckOptions{
		Logs:    w.logs,
		Secrets: &w.secrets,
		Wire:    w.wire,
		Store:   w.store,
		HostHandouts: func() []string {
			var out []string
			for _, ts := range w.host.handouts() {
				out = append(out, ts.AccessToken)
			}
			return out
		},
		Unreadable: func() bool { return w.sim.store.corrupt > 0 },
		IsAPIKey:   func(v string) bool { return w.apiKeys[v] },
	})
	w.host.mint = func(acct oauthtest.Account) oauthtest.TokenSet {
		ts := srv.Issue(acct)
		w.secrets.Add(ts.IDToken, ts.AccessToken, ts.RefreshToken)
		return ts
	}
	t.Cleanup(w.close)

	for range 3 {
		w.stash = append(w.stash, w.issue(mainAccount))
	}
	w.seed(o.initial)
	w.run(action{
		name: fmt.Sprintf("start (%s, store %s, forced method %q, workspace %q, every request %v)",
			o.dialect, o.initial, o.policy.ForcedMethod, o.policy.ForcedWorkspace, o.every),
		real: func() []result { w.startManager(); return nil },
		sim: func(s *sim) []result {
			if r := s.restart(o.policy, o.every, ""); r.Err != "" {
				s.problem("the sim could not load: %s", r.Err)
			}
			return nil
		},
	})
	return w
}

func (w *world) close() {
	if w.m != nil {
		w.m.Close()
	}
	w.srv.Close()
	// Host-managed tokens live in the process's memory, keyed by home.
	_, _ = storage.NewEphemeral(w.home).Delete(context.Background())
	os.RemoveAll(w.home)
}

// seed puts what the store holds at start, as another program left it.
func (w *world) seed(what string) {
	ctx := context.Background()
	switch what {
	case "tokens":
		rec := w.managedRecord(w.issue(mainAccount), false)
		w.otherSave(rec)
		w.sim.store.file = rec
	case "api key":
		rec := w.apiKeyRecord()
		w.otherSave(rec)
		w.sim.store.file = rec
	case "host tokens":
		rec := w.hostRecord(w.issue(mainAccount))
		if _, err := storage.NewEphemeral(w.home).Save(ctx, rec, states.AnyVersion); err != nil {
			w.t.Fatal(err)
		}
		r := rec
		w.sim.store.memory = &r
	case "corrupt":
		w.corruptions = 1
		w.corrupt(1)
		w.sim.store.corrupt = 1
	}
}

// startManager builds a manager (New loads the store) and subscribes.
func (w *world) startManager() {
	env := map[string]string{}
	if w.envKey != "" {
		env[engine.EnvAPIKey] = w.envKey
	}
	p := w.profile
	cfg := engine.Config{
		Store:             w.store,
		Profile:           &p,
		HTTPClient:        &http.Client{Transport: w.wire},
		Clock:             w.clock,
		Logger:            w.logs.Logger(),
		Skew:              w.policy.Skew,
		ForcedLoginMethod: transitions.Method(w.policy.ForcedMethod),
		ForcedWorkspaceID: w.policy.ForcedWorkspace,
		HonorEnvAPIKey:    true,
		Getenv:            func(k string) string { return env[k] },
		Table:             w.table,
		LockTimeout:       lockTimeout,
		HostTimeout:       hostTimeout,
		StepEveryRequest:  w.every,
	}
	// The subscriber is in the Config, so that it sees the load in New too.
	// Every manager of the run reports to the same buffer: Close delivers
	// what is queued before it returns, so the buffer stays in order.
	cfg.OnTransition = func(t engine.Transition) {
		w.checker.CheckTransition(t)
		w.subs.add(t)
	}
	// A new manager is a new process: what the old one saw rotated is not
	// its to know.
	w.wire.Forget()
	m, err := engine.New(context.Background(), cfg)
	if err != nil {
		w.t.Fatalf("New: %v", err)
	}
	w.m = m
	m.SetExternalRefresher(w.host)
}

// --- secrets and token sets -------------------------------------------------

// issue mints tokens for acct at the server, as a login elsewhere would.
func (w *world) issue(acct oauthtest.Account) oauthtest.TokenSet {
	ts := w.srv.Issue(acct)
	w.secrets.Add(ts.IDToken, ts.AccessToken, ts.RefreshToken)
	w.sim.server.issued(ts)
	return ts
}

// managedRecord is ts as it loads from a store; opaque replaces the access
// token with one that has no expiry, last refreshed nine days ago.
func (w *world) managedRecord(ts oauthtest.TokenSet, opaque bool) states.Record {
	rec := states.Record{
		Mode:         states.ModeManaged,
		Tokens:       ts.Tokens(),
		Claims:       claims(ts.Account),
		AccessExpiry: ts.AccessExpiry,
		LastRefresh:  w.clock.Now(),
	}
	if opaque {
		access := fmt.Sprintf("opaque-access-%s", fingerprint(ts.RefreshToken))
		w.secrets.Add(access)
		rec.Tokens.AccessToken = states.NewSecret(access)
		rec.AccessExpiry = time.Time{}
		rec.LastRefresh = w.clock.Now().Add(-9 * 24 * time.Hour)
	}
	return rec
}

func (w *world) hostRecord(ts oauthtest.TokenSet) states.Record {
	rec := w.managedRecord(ts, false)
	rec.Mode = states.ModeExternal
	rec.Tokens.RefreshToken = states.Secret{}
	return rec
}

// apiKeyRecord makes up a new API key.
func (w *world) apiKeyRecord() states.Record {
	w.keyCount++
	key := fmt.Sprintf("sk-test-%d-%s", w.keyCount, fingerprint(w.home))
	w.secrets.Add(key)
	w.apiKeys[key] = true
	return states.Record{Mode: states.ModeAPIKey, APIKey: states.NewSecret(key)}
}

// fingerprint is a short digest of s, to make up values that differ.
func fingerprint(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:4])
}

// labels name secrets in failure messages without revealing them: "s1",
// "s2", ... in the order they are first named. Token values are random,
// but the order is fixed by the sequence of actions, so a message reads the
// same each time rapid replays a case; rapid shrinks a case only while its
// failure message stays the same.
type labels struct {
	mu sync.Mutex
	m  map[string]string
}

func (l *labels) of(secret string) string {
	if secret == "" {
		return ""
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = map[string]string{}
	}
	name, ok := l.m[secret]
	if !ok {
		name = fmt.Sprintf("s%d", len(l.m)+1)
		l.m[secret] = name
	}
	return name
}

// --- the other process ------------------------------------------------------

// otherSave writes rec to auth.json under the lock, as another credfsm or
// Codex process would, whatever the file holds.
func (w *world) otherSave(rec states.Record) {
	ctx := context.Background()
	unlock := w.holdLock()
	defer unlock()
	if _, err := w.file.Save(ctx, rec, states.AnyVersion); err != nil {
		w.t.Fatalf("other process: save: %v", err)
	}
}

// corrupt writes garbage number n over auth.json.
func (w *world) corrupt(n int) {
	data := fmt.Sprintf("{\"auth_mode\": \"chatgpt\", \"tokens\": [%d", n)
	if err := os.WriteFile(filepath.Join(w.home, storage.AuthFileName), []byte(data), 0o600); err != nil {
		w.t.Fatal(err)
	}
}

// holdLock takes the store lock as another process would and returns the
// function that releases it.
func (w *world) holdLock() func() {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	unlock, err := w.file.Lock(ctx)
	if err != nil {
		w.t.Fatalf("another process cannot take the store lock: %v\nhistory:\n  %s", err,
			strings.Join(w.history, "\n  "))
	}
	return func() { _ = unlock() }
}

// --- the host double ---------------------------------------------------------

// hostDouble is the embedding host: it hands out the tokens it was given,
// or fails the way it was told to.
type hostDouble struct {
	// mint issues the tokens the host hands out, when it is asked, so that
	// they are as fresh as a real host's.
	mint func(oauthtest.Account) oauthtest.TokenSet

	mu      sync.Mutex
	answer  enginetest.HostClass
	handed  []oauthtest.TokenSet // every token set handed out, in order
	gate    chan struct{}
	arrived chan struct{}
}

func (h *hostDouble) program(a enginetest.HostClass) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.answer = a
}

// handouts returns the token sets handed out so far.
func (h *hostDouble) handouts() []oauthtest.TokenSet {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.handed)
}

// hold makes the next request wait until release; the returned channel is
// closed when one arrives.
func (h *hostDouble) hold() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.gate, h.arrived = make(chan struct{}), make(chan struct{})
	return h.arrived
}

func (h *hostDouble) release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.gate != nil {
		close(h.gate)
	}
	h.gate, h.arrived = nil, nil
}

func (h *hostDouble) RefreshTokens(ctx context.Context, req oauth.HostRequest) (oauth.HostTokens, error) {
	h.mu.Lock()
	a := h.answer
	gate, arrived := h.gate, h.arrived
	h.arrived = nil // the gate stays, for release to open
	h.mu.Unlock()
	if gate != nil && arrived != nil {
		close(arrived)
		select {
		case <-gate:
		case <-ctx.Done():
		}
	}
	var ts oauthtest.TokenSet
	switch a {
	case enginetest.HostTokens, enginetest.HostBadIDToken:
		ts = h.mint(mainAccount)
	case enginetest.HostOtherWorkspace:
		ts = h.mint(otherAccount)
	}
	if ts.AccessToken != "" {
		h.mu.Lock()
		h.handed = append(h.handed, ts)
		h.mu.Unlock()
	}
	switch a {
	case enginetest.HostTokens, enginetest.HostOtherWorkspace:
		return oauth.HostTokens{AccessToken: states.NewSecret(ts.AccessToken),
			IDToken: states.NewSecret(ts.IDToken)}, nil
	case enginetest.HostBadIDToken:
		return oauth.HostTokens{AccessToken: states.NewSecret(ts.AccessToken),
			IDToken: states.NewSecret("not-a-jwt-at-all")}, nil
	case enginetest.HostHang:
		<-ctx.Done()
		return oauth.HostTokens{}, ctx.Err()
	}
	return oauth.HostTokens{}, errors.New("host: the user signed out of the editor")
}

// --- subscriptions -----------------------------------------------------------

type subBuffer struct {
	mu   sync.Mutex
	list []engine.Transition
}

func (b *subBuffer) add(t engine.Transition) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.list = append(b.list, t)
}

func (b *subBuffer) snapshot() []engine.Transition {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.list)
}

// --- invariants checked as they happen ---------------------------------------

func (w *world) violate(format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.violations = append(w.violations, fmt.Sprintf(format, args...))
}

// --- comparing ------------------------------------------------------------------

// entry is a transition as the suite compares it.
type entry struct {
	Event    string
	From, To string
	Gen      uint64
	Commands string
	Rule     string // the engine's rule, for messages; the sim names none
}

func (e entry) String() string {
	s := fmt.Sprintf("%s: %s -> %s (gen %d) [%s]", e.Event, e.From, e.To, e.Gen, e.Commands)
	if e.Rule != "" {
		s += " rule " + e.Rule
	}
	return s
}

func kindsOf(cmds []effects.Command) string {
	var k []string
	for _, c := range cmds {
		k = append(k, c.Kind().String())
	}
	return strings.Join(k, ",")
}

func simEntries(steps []enginetest.Step) []entry {
	var out []entry
	for _, s := range steps {
		out = append(out, entry{Event: s.Event.String(), From: s.From.String(), To: s.To.String(),
			Gen: s.Generation, Commands: kindsOf(s.Commands)})
	}
	return out
}

// observed is the part of a Snapshot the sim predicts.
type observed struct {
	State      states.State
	Mode       states.Mode
	Email      string
	Plan       states.Plan
	UserID     string
	AccountID  string
	Expiry     time.Time
	StaleAt    time.Time
	Last       time.Time
	Failure    states.Reason
	HasError   bool
	RetryAt    time.Time
	Generation uint64
	FromEnv    bool
	Unsaved    bool
}

func observe(s engine.Snapshot) observed {
	return observed{s.State, s.Mode, s.Email, s.Plan, s.UserID, s.AccountID, s.Expiry, s.StaleAt,
		s.LastRefresh, s.Failure, s.LastError != "", s.RetryAt, s.Generation, s.FromEnv, s.Unsaved}
}

func (s *sim) observed() observed {
	m := &s.model
	r := m.Record
	o := observed{m.State, r.Mode, r.Claims.Email, r.Claims.Plan, r.Claims.UserID, r.AccountID(),
		r.AccessExpiry, time.Time{}, r.LastRefresh, m.Failure, m.HasError, m.RetryAt, m.Generation,
		m.FromEnv, m.Unsaved}
	if at, ok := m.Policy.StaleAt(r); ok && (m.State == states.Fresh || m.State == states.Stale) {
		o.StaleAt = at
	}
	return o
}

// storedView is what the store holds, by fingerprints.
type storedView struct {
	File    string
	Corrupt bool
	Memory  string
}

func (l *labels) describe(r states.Record) string {
	if r.IsZero() {
		return ""
	}
	last := ""
	if !r.LastRefresh.IsZero() {
		last = r.LastRefresh.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("%s key=%s id=%s access=%s refresh=%s account=%q last=%s claims=%+v exp=%s",
		r.Mode, l.of(r.APIKey.Reveal()), l.of(r.Tokens.IDToken.Reveal()),
		l.of(r.Tokens.AccessToken.Reveal()), l.of(r.Tokens.RefreshToken.Reveal()),
		r.Tokens.AccountID, last, r.Claims, r.AccessExpiry.UTC().Format(time.RFC3339))
}

func (w *world) realStore() storedView {
	ctx := context.Background()
	var v storedView
	rec, _, err := w.file.Load(ctx)
	switch {
	case errors.Is(err, states.ErrUnreadable):
		v.Corrupt = true
	case err != nil:
		w.t.Fatalf("reading auth.json: %v", err)
	default:
		v.File = w.labels.describe(rec)
	}
	mem, _, err := storage.NewEphemeral(w.home).Load(ctx)
	if err != nil {
		w.t.Fatalf("reading the memory entry: %v", err)
	}
	v.Memory = w.labels.describe(mem)
	return v
}

func (s *sim) stored(l *labels) storedView {
	v := storedView{File: l.describe(s.store.file), Corrupt: s.store.corrupt > 0}
	if s.store.memory != nil {
		v.Memory = l.describe(*s.store.memory)
	}
	return v
}

// errClass reduces an error to what the suite compares.
func errClass(err error) string {
	var pe *engine.PermanentError
	switch {
	case err == nil:
		return ""
	case errors.Is(err, engine.ErrLoggedOut):
		return "logged out"
	case errors.As(err, &pe):
		return "permanent " + pe.Reason.String()
	case errors.Is(err, engine.ErrTransient):
		return "transient"
	case errors.Is(err, engine.ErrKeyRejected):
		return "key rejected"
	case errors.Is(err, engine.ErrRefusedAgain):
		return "refused again"
	case errors.Is(err, engine.ErrNotRefreshable):
		return "not refreshable"
	case errors.Is(err, engine.ErrClosed):
		return "closed"
	case errors.Is(err, engine.ErrNotPermitted):
		return "not permitted"
	case errors.Is(err, engine.ErrInvalidEvent):
		return "invalid event"
	case strings.Contains(err.Error(), "signed in for this process"):
		return "unsaved"
	}
	return "other: " + err.Error()
}

// --- one action -------------------------------------------------------------------

// faults are the faults drawn for an action; each is armed only if the
// dry run says the action reaches it.
type faults struct {
	refresh enginetest.RefreshOutcome
	host    enginetest.HostClass
	store   string // "", "save fails", "save conflicts", "lock held"

	// conflict is what another process writes when a save conflicts.
	conflict states.Record
}

func drawFaults(t *rapid.T) faults {
	return faults{
		refresh: enginetest.RefreshOutcomeGen().Draw(t, "refresh outcome"),
		host:    enginetest.HostOutcomeGen().Draw(t, "host answer"),
		store: rapid.SampledFrom([]string{"", "", "", "", "", "", "", "", "", "", "", "", "",
			"save fails", "save conflicts", "", "", "", "", "", "", "", "", "", "", "", "",
			"save fails", "save conflicts", "lock held"}).Draw(t, "store fault"),
	}
}

// action describes one step of the suite: how to run it for real, and how
// to run it on the sim. Both return one result per call made.
type action struct {
	name   string
	faults faults
	// before and simBefore are what happens first, outside any fault and
	// without a result to compare (another process at work, a login that
	// sets the scene); their transitions are compared all the same.
	before    func()
	simBefore func(s *sim)
	real      func() []result
	sim       func(s *sim) []result
	burst     bool // transitions are compared as a multiset
}

// run performs a: a dry run on a copy of the sim to learn which faults the
// action reaches, arming those; the real action; a barrier that waits for
// the manager to rest; the sim's run over the real exchanges; and the
// comparison of transitions, results, snapshot and store.
func (w *world) run(a action) {
	t := w.t
	w.history = append(w.history, a.name)
	if n := w.srv.PendingFaults(); n != 0 {
		t.Fatalf("%d faults left over from an earlier action", n)
	}

	if a.faults.store == "save conflicts" {
		a.faults.conflict = w.managedRecord(w.issue(mainAccount), false)
	}
	w.sim.beginAction()
	w.armHost(w.sim, a.faults.host)

	// The dry run.
	dry := w.sim.clone()
	dry.dry = true
	if a.simBefore != nil {
		a.simBefore(dry)
		dry.counts = simCounts{}
	}
	w.armSim(dry, a.faults)
	a.sim(dry)
	counts := dry.counts

	// Another process's part comes first, before any fault is armed.
	if a.before != nil {
		a.before()
	}

	// Arm what the action will reach.
	w.host.program(a.faults.host)
	if !w.sim.host.registered {
		w.m.SetExternalRefresher(nil)
	}
	armed := faults{host: a.faults.host, conflict: a.faults.conflict}
	if counts.redeems > 0 {
		armed.refresh = a.faults.refresh
		armed.refresh.Arm(w.srv, w.wire)
	}
	var unlock func()
	switch {
	case a.faults.store == "lock held" && counts.locks > 0:
		armed.store = a.faults.store
		unlock = w.holdLock()
	case a.faults.store == "save fails" && counts.saves > 0:
		armed.store = a.faults.store
		w.store.FailNextSave(errors.New("storage: no space left on device (simulated)"))
	case a.faults.store == "save conflicts" && counts.saves > 0:
		armed.store = a.faults.store
		w.store.BeforeNextSave(func() { w.conflictingWrite(a.faults.conflict) })
	}
	if armed.refresh.Name != "" && armed.refresh.Name != "ok" {
		w.history[len(w.history)-1] += ", refresh: " + armed.refresh.Name
	}
	if counts.hostAsks > 0 || !w.sim.host.registered {
		w.history[len(w.history)-1] += ", host: " + a.faults.host.String()
	}
	if armed.store != "" {
		w.history[len(w.history)-1] += ", store: " + armed.store
	}

	// The real action.
	got := a.real()
	if unlock != nil {
		unlock()
	}
	w.barrier()
	if !w.sim.host.registered {
		w.m.SetExternalRefresher(w.host)
	}

	// The sim's run.
	exs := w.wire.Exchanges()
	w.sim.exchanges = exs[w.exMark:]
	w.actionExchanges = w.sim.exchanges
	w.exMark = len(exs)
	handed := w.host.handouts()
	w.sim.host.handed = handed[w.hostMark:]
	w.hostMark = len(handed)
	if a.simBefore != nil {
		a.simBefore(w.sim)
	}
	w.armSim(w.sim, armed)
	want := a.sim(w.sim)
	w.sim.barrier()
	w.compare(a, got, want)
}

// armHost sets how the host answers on the sim.
func (w *world) armHost(s *sim, a enginetest.HostClass) {
	s.host.answer, s.host.registered = a, a != enginetest.HostUnregistered
}

// armSim sets the faults of f on the sim.
func (w *world) armSim(s *sim, f faults) {
	if f.refresh.Name != "" {
		s.refresh = f.refresh
	}
	switch f.store {
	case "lock held":
		s.lockTaken = true
	case "save fails":
		s.saveFault = saveFails
	case "save conflicts":
		s.saveFault = saveConflicts
		rec := f.conflict
		s.onSave = func(st *simStore) { st.file, st.corrupt = rec, 0 }
	}
}

// conflictingWrite is another process that does not take the lock (an
// older Codex, say) signing in just before the manager saves, so that the
// manager's compare-and-swap finds another version.
func (w *world) conflictingWrite(rec states.Record) {
	if _, err := w.file.Save(context.Background(), rec, states.AnyVersion); err != nil {
		w.violate("the conflicting write failed: %v", err)
	}
}

// barrier waits until the manager rests: a 401 for no token waits for any
// flight to end and changes nothing, and once a subscriber has seen it,
// it has seen everything before it.
func (w *world) barrier() {
	w.m.Observe(context.Background(), "", http.StatusUnauthorized, nil)
	want := len(w.logs.Transitions())
	deadline := time.Now().Add(waitLimit)
	for len(w.subs.snapshot()) < want {
		if time.Now().After(deadline) {
			w.t.Fatalf("a subscriber saw %d transitions of %d after %s", len(w.subs.snapshot()), want, waitLimit)
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// realEntries returns the transitions since the last action: all of them
// from the log, with the commands a subscriber saw.
func (w *world) realEntries() []entry {
	logged := w.logs.Transitions()
	fresh := logged[w.logMark:]
	w.logMark = len(logged)
	subs := w.subs.snapshot()
	// The subscriber saw what the log holds, in the same order; the log is
	// written by the step itself, the subscriber is told later, so the two
	// are checked against each other.
	out := make([]entry, len(fresh))
	for i, l := range fresh {
		out[i] = entry{Event: l.Event, From: l.From, To: l.To, Gen: l.Generation, Rule: l.Rule}
		j := w.logMark - len(fresh) + i
		if j < 0 || j >= len(subs) || subs[j].Rule != l.Rule {
			w.t.Fatalf("a subscriber's transitions disagree with the log at %d", j)
		}
		var k []string
		for _, c := range subs[j].Commands {
			k = append(k, c.String())
		}
		out[i].Commands = strings.Join(k, ",")
	}
	return out
}

// compare checks the real action against the sim's prediction.
func (w *world) compare(a action, got, want []result) {
	t := w.t
	real := w.realEntries()
	predicted := simEntries(w.sim.trace)
	// The barrier the sim stepped, as the engine logged it.
	predicted = append(predicted, entry{Event: states.KindUnauthorized.String(),
		From: w.sim.model.State.String(), To: w.sim.model.State.String(),
		Gen: w.sim.model.Generation})

	// Coverage, without the barrier.
	if len(real) > 0 {
		for _, e := range real[:len(real)-1] {
			w.cov.fired(e.Rule, e.To)
		}
	}

	fail := func(format string, args ...any) {
		t.Helper()
		var exs []string
		for _, ex := range w.actionExchanges {
			exs = append(exs, fmt.Sprintf("sent %s: status %d, err %v, cut %v, access %s, refresh %s",
				w.labels.of(ex.Sent), ex.Status, ex.Err, ex.Cut, w.labels.of(ex.Access), w.labels.of(ex.Refresh)))
		}
		t.Fatalf("after %s\n%s\nexchanges of this action:\n  %s\nhistory:\n  %s", a.name,
			fmt.Sprintf(format, args...), strings.Join(exs, "\n  "), strings.Join(w.history, "\n  "))
	}

	r, p := real, predicted
	if a.burst {
		r, p = sortedEntries(r), sortedEntries(p)
	}
	if d := cmp.Diff(p, r, cmp.Comparer(func(x, y entry) bool {
		return x.Event == y.Event && x.From == y.From && x.To == y.To && x.Gen == y.Gen &&
			x.Commands == y.Commands
	})); d != "" {
		fail("transitions differ (-sim +engine):\nsim:\n  %s\nengine:\n  %s",
			joinEntries(p), joinEntries(r))
	}
	if len(w.sim.problems) > 0 {
		fail("the real exchanges contradict the sim:\n  %s\nsim:\n  %s\nengine:\n  %s",
			strings.Join(w.sim.problems, "\n  "), joinEntries(predicted), joinEntries(real))
	}
	if n := len(w.sim.exchanges); n > 0 {
		fail("the token server saw %d redemption(s) the sim did not expect", n)
	}
	if n := len(w.sim.host.handed); n > 0 {
		fail("the host was asked %d time(s) more than the sim expected", n)
	}
	if n := w.srv.PendingFaults(); n != 0 {
		fail("an armed fault was not used: the expected redemption did not happen")
	}
	if w.store.Armed() {
		w.store.Disarm()
		fail("an armed store fault was not used: the expected save did not happen")
	}

	if a.burst {
		got, want = sortedResults(got), sortedResults(want)
	}
	if d := cmp.Diff(want, got); d != "" {
		fail("results differ (-sim +engine):\n%s", d)
	}
	snap := w.m.Snapshot()
	if !w.sim.model.RetryLatest.IsZero() {
		early, late := w.sim.model.RetryAt, w.sim.model.RetryLatest
		w.sim.backoffEnd = late
		if !w.sim.model.Pin(snap.RetryAt) {
			fail("the backoff ends outside the window the policy allows (%s to %s after now)",
				early.Sub(w.sim.now), late.Sub(w.sim.now))
		}
	}
	if d := cmp.Diff(w.sim.observed(), observe(snap)); d != "" {
		fail("snapshots differ (-sim +engine):\n%s", d)
	}
	if d := cmp.Diff(w.sim.stored(&w.labels), w.realStore()); d != "" {
		fail("stores differ (-sim +engine):\n%s", d)
	}
}

func sortedEntries(es []entry) []entry {
	out := slices.Clone(es)
	slices.SortFunc(out, func(a, b entry) int { return strings.Compare(a.key(), b.key()) })
	return out
}

func (e entry) key() string {
	return fmt.Sprintf("%s|%s|%s|%020d|%s", e.Event, e.From, e.To, e.Gen, e.Commands)
}

func joinEntries(es []entry) string {
	var s []string
	for _, e := range es {
		s = append(s, e.String())
	}
	return strings.Join(s, "\n  ")
}

func sortedResults(rs []result) []result {
	out := slices.Clone(rs)
	slices.SortFunc(out, func(a, b result) int {
		return strings.Compare(a.Action+"|"+a.Token+"|"+a.Err, b.Action+"|"+b.Token+"|"+b.Err)
	})
	return out
}

// --- calls, with the invariants every answer must keep --------------------------

// handOut notes a token a call handed out, for 401s about older tokens,
// and checks the answer.
func (w *world) handOut(tok string, err error) {
	w.checker.Handed(tok, err)
	if tok != "" {
		w.mu.Lock()
		w.handed = append(w.handed, tok)
		w.mu.Unlock()
	}
}

func (w *world) checkErr(err error) { w.checker.Err(err) }

func (w *world) callToken() result {
	tok, err := w.m.Token(context.Background())
	w.handOut(tok, err)
	return result{Token: tok, Err: errClass(err)}
}

func (w *world) callObserve(token string) result {
	d := w.m.Observe(context.Background(), token, http.StatusUnauthorized, nil)
	if d.Action == engine.Retry {
		w.handOut(d.Token, nil)
	}
	w.checkErr(d.Err)
	return result{Action: d.Action.String(), Token: d.Token, Err: errClass(d.Err)}
}

func (w *world) callRefresh() result {
	err := w.m.Refresh(context.Background())
	w.checkErr(err)
	return result{Err: errClass(err)}
}

// --- the checks after every step ------------------------------------------------

// invariants is the suite's "" action: what must hold after every step.
// The Checker holds the invariants any manager keeps; the state must also
// be the one the sim predicts.
func (w *world) invariants(t *rapid.T) {
	if st := w.m.Snapshot().State; st != w.sim.model.State {
		t.Fatalf("state %s, the sim says %s", st, w.sim.model.State)
	}
	w.mu.Lock()
	v := append(slices.Clone(w.violations), w.checker.Check(w.m)...)
	w.mu.Unlock()
	if len(v) > 0 {
		t.Fatalf("invariants broken:\n  %s\nhistory:\n  %s", strings.Join(v, "\n  "),
			strings.Join(w.history, "\n  "))
	}
}
