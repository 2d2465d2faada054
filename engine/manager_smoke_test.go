package engine_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credfsm/credfsm/effects/effectstest"
	"github.com/credfsm/credfsm/engine"
	"github.com/credfsm/credfsm/states"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func managed(access, refresh string, exp time.Time) states.Record {
	return states.Record{
		Mode: states.ModeManaged,
		Tokens: states.Tokens{
			IDToken:      states.NewSecret("id"),
			AccessToken:  states.NewSecret(access),
			RefreshToken: states.NewSecret(refresh),
			AccountID:    "acct-1",
		},
		AccessExpiry: exp,
		LastRefresh:  exp.Add(-time.Hour),
	}
}

func TestManagerRefreshCoalescesSmoke(t *testing.T) {
	clock := effectstest.NewClock(t0)
	store := effectstest.NewMemStore()
	store.Put(managed("a1", "r1", t0.Add(time.Hour)))

	var calls atomic.Int32
	release := make(chan struct{})
	endpoint := effectstest.EndpointFunc(func(ctx context.Context, rt states.Secret) (states.Grant, error) {
		calls.Add(1)
		<-release
		if rt.Reveal() != "r1" {
			return states.Grant{}, &states.RefreshError{Permanent: true, Reason: states.ReasonReused}
		}
		return states.Grant{AccessToken: states.NewSecret("a2"), RefreshToken: states.NewSecret("r2"),
			AccessExpiry: clock.Now().Add(time.Hour)}, nil
	})
	m, err := engine.New(context.Background(), engine.Config{Store: store, Endpoint: endpoint, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()

	if got, err := m.Token(context.Background()); err != nil || got != "a1" {
		t.Fatalf("Token = %q, %v; want a1", got, err)
	}
	clock.Advance(58 * time.Minute)

	var wg sync.WaitGroup
	toks := make([]string, 200)
	for i := range toks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok, err := m.Token(context.Background())
			if err != nil {
				t.Error(err)
			}
			toks[i] = tok
		}()
	}
	time.Sleep(50 * time.Millisecond)
	close(release)
	wg.Wait()
	for _, tok := range toks {
		if tok != "a2" {
			t.Fatalf("got token %q, want a2", tok)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("redemptions = %d, want 1", n)
	}
	rec, _ := store.Get()
	if rec.Tokens.RefreshToken.Reveal() != "r2" {
		t.Fatalf("stored refresh token not rotated")
	}

	d := m.Observe(context.Background(), "a1", 401, nil)
	if d.Action != engine.Retry || d.Token != "a2" {
		t.Fatalf("stale 401: %+v", d)
	}
	d = m.Observe(context.Background(), "a2", 401, nil)
	if d.Action != engine.GiveUp || !errors.Is(d.Err, engine.ErrPermanent) {
		t.Fatalf("401 with dead refresh token: %+v", d)
	}
	if s := m.Snapshot(); s.State != states.FailedPermanent || s.Failure != states.ReasonReused {
		t.Fatalf("snapshot %+v", s)
	}
}
