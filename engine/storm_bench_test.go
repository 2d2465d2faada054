package engine_test

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credfsm/credfsm/effects/effectstest"
	"github.com/credfsm/credfsm/engine"
	"github.com/credfsm/credfsm/oauth"
	"github.com/credfsm/credfsm/oauth/oauthtest"
	"github.com/credfsm/credfsm/states"
)

// stormSizes are the numbers of callers that get a 401 at once.
var stormSizes = []int{1, 10, 100, 1000}

// expiredIssuer mints tokens that expired an hour ago from a token server
// whose clock is otherwise the wall clock: the server that later redeems
// them stamps the new tokens with the real time.
type expiredIssuer struct {
	srv    *oauthtest.Server
	offset atomic.Int64 // added to the wall clock, in nanoseconds
}

func newExpiredIssuer(b *testing.B) *expiredIssuer {
	b.Helper()
	e := &expiredIssuer{}
	e.srv = oauthtest.NewServer(oauthtest.WithClock(func() time.Time {
		return time.Now().Add(time.Duration(e.offset.Load()))
	}))
	b.Cleanup(e.srv.Close)
	return e
}

// issue returns tokens issued two hours ago, with the default lifetime of
// an hour. No request may be in flight at the server meanwhile.
func (e *expiredIssuer) issue() oauthtest.TokenSet {
	e.offset.Store(int64(-2 * time.Hour))
	defer e.offset.Store(0)
	return e.srv.Issue(mainAccount)
}

// stormHTTPClient talks to the token server over a pool large enough that a
// storm of a thousand naive redemptions reuses its connections from one
// storm to the next instead of opening (and leaving in TIME_WAIT) a
// thousand new ones each time.
func stormHTTPClient(b *testing.B) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 1024}
	b.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// stormStats are the token server's counters over a run of storms.
type stormStats struct{ before oauthtest.Stats }

func (s *stormStats) report(b *testing.B, srv *oauthtest.Server, storms int, unrecovered int) {
	after := srv.Stats()
	per := func(n int) float64 { return float64(n) / float64(storms) }
	b.ReportMetric(per(after.Redemptions-s.before.Redemptions), "redemptions/op")
	b.ReportMetric(per(after.ReuseAttempts-s.before.ReuseAttempts), "reuse-failures/op")
	b.ReportMetric(per(unrecovered), "unrecovered/op")
}

// BenchmarkRefreshStorm: n callers share one credential whose access token
// has expired, and each of them gets a 401 for it at the same moment. An
// iteration is one storm: from the moment the callers are released until
// the last of them has its answer. Building the credential and starting the
// callers is outside the timer.
//
// impl=credfsm reports each 401 to Manager.Observe, on a manager that has
// just reloaded the expired tokens from a store in memory; every caller must
// be told to retry with the same new token, and the token server must see
// exactly one redemption and no reuse per storm, else the benchmark fails.
// The manager lives across storms: building one per storm would leave its
// garbage for the collector to clear during the next storm's timed part.
//
// impl=naive is the baseline: each caller, on its 401, redeems the refresh
// token it last knew with oauth.Client.Redeem, as code without coalescing
// does, and shares what it got. Against the rotating token server, the first
// redemption spends the refresh token and the others are refused as reuse;
// a caller that started late may redeem the rotated one, spending it too.
// The metrics count what happened; nothing is asserted.
//
// Both talk to the same loopback token server, over the same kind of pool.
func BenchmarkRefreshStorm(b *testing.B) {
	for _, n := range stormSizes {
		b.Run("impl=credfsm/callers="+strconv.Itoa(n), func(b *testing.B) {
			benchStormCredfsm(b, n)
		})
	}
	for _, n := range stormSizes {
		b.Run("impl=naive/callers="+strconv.Itoa(n), func(b *testing.B) {
			benchStormNaive(b, n)
		})
	}
}

func benchStormCredfsm(b *testing.B, n int) {
	ctx := context.Background()
	iss := newExpiredIssuer(b)
	profile := iss.srv.CodexProfile()
	store := effectstest.NewMemStore()
	m, err := engine.New(ctx, engine.Config{Store: store, Profile: &profile,
		HTTPClient: stormHTTPClient(b)})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	stats := stormStats{before: iss.srv.Stats()}
	decisions := make([]engine.Decision, n)

	b.ReportAllocs()
	b.StopTimer()
	for range b.N {
		// One manager serves every storm, as in a long-lived host: each
		// storm starts with expired tokens that another process left in
		// the store, and a reload that picks them up.
		ts := iss.issue()
		store.Put(states.Record{Mode: states.ModeManaged, Tokens: ts.Tokens(),
			AccessExpiry: ts.AccessExpiry, LastRefresh: ts.AccessExpiry.Add(-time.Hour)})
		if err := m.Reload(ctx); err != nil {
			b.Fatal(err)
		}
		if s := m.Snapshot(); s.State != states.Stale {
			b.Fatalf("reloaded into %s, want stale", s.State)
		}
		redeemed := iss.srv.Stats().Redemptions

		start := make(chan struct{})
		var done sync.WaitGroup
		for i := range n {
			done.Go(func() {
				<-start
				decisions[i] = m.Observe(ctx, ts.AccessToken, http.StatusUnauthorized, nil)
			})
		}
		b.StartTimer()
		close(start)
		done.Wait()
		b.StopTimer()

		if got := iss.srv.Stats().Redemptions - redeemed; got != 1 {
			b.Fatalf("a storm of %d 401s made %d redemptions, want 1", n, got)
		}
		want, _ := m.Token(ctx)
		for i, d := range decisions {
			if d.Action != engine.Retry || d.Token != want || d.Token == ts.AccessToken {
				b.Fatalf("caller %d: %v (%v), token %s; want retry with the new token %s",
					i, d.Action, d.Err, fingerprint(d.Token), fingerprint(want))
			}
		}
	}
	stats.report(b, iss.srv, b.N, 0)
	if st := iss.srv.Stats(); st.ReuseAttempts != stats.before.ReuseAttempts {
		b.Fatalf("the token server saw %d reuse attempts, want none",
			st.ReuseAttempts-stats.before.ReuseAttempts)
	}
}

// naiveCaller is the baseline's shared credential: the tokens the last
// successful redemption returned, and nothing that coordinates redemptions.
type naiveCaller struct {
	client *oauth.Client

	mu      sync.Mutex
	access  string
	refresh states.Secret
}

// recover redeems the refresh token the caller knows now, as a request that
// just got a 401 would, and keeps what comes back.
func (c *naiveCaller) recover(ctx context.Context) (string, error) {
	c.mu.Lock()
	rt := c.refresh
	c.mu.Unlock()

	g, err := c.client.Redeem(ctx, rt)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.access = g.AccessToken.Reveal()
	if !g.RefreshToken.IsZero() {
		c.refresh = g.RefreshToken
	}
	return c.access, nil
}

func benchStormNaive(b *testing.B, n int) {
	ctx := context.Background()
	iss := newExpiredIssuer(b)
	client, err := oauth.NewClient(iss.srv.CodexProfile(), oauth.WithHTTPClient(stormHTTPClient(b)))
	if err != nil {
		b.Fatal(err)
	}
	stats := stormStats{before: iss.srv.Stats()}
	errs := make([]error, n)
	unrecovered := 0

	b.ReportAllocs()
	b.StopTimer()
	for range b.N {
		ts := iss.issue()
		c := &naiveCaller{client: client, access: ts.AccessToken,
			refresh: states.NewSecret(ts.RefreshToken)}

		start := make(chan struct{})
		var done sync.WaitGroup
		for i := range n {
			done.Go(func() {
				<-start
				_, errs[i] = c.recover(ctx)
			})
		}
		b.StartTimer()
		close(start)
		done.Wait()
		b.StopTimer()

		for _, err := range errs {
			if err != nil {
				unrecovered++
				var re *states.RefreshError
				if !errors.As(err, &re) || re.Reason != states.ReasonReused {
					b.Logf("a naive caller failed other than by reuse: %v", err)
				}
			}
		}
	}
	stats.report(b, iss.srv, b.N, unrecovered)
}
