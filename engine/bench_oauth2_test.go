package engine_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/credfsm/credfsm/effects/effectstest"
	"github.com/credfsm/credfsm/engine"
	"github.com/credfsm/credfsm/oauth"
	"github.com/credfsm/credfsm/oauth/oauthtest"
	"github.com/credfsm/credfsm/states"
)

// Benchmarks of what a host pays per API request, side by side with
// golang.org/x/oauth2 doing the same job. Each pair is named
// .../impl=credfsm and .../impl=xoauth2, so that
//
//	benchstat -col /impl bench.txt
//
// puts them in columns and prints the ratio. Both sides run on the wall
// clock, with a token valid for an hour, so that neither ever refreshes.

// benchTokens mints Codex tokens valid for an hour of wall-clock time. Both
// sides of a pair send the same access token, so that the requests they make
// are the same size.
func benchTokens(b *testing.B) oauthtest.TokenSet {
	b.Helper()
	srv := oauthtest.NewServer()
	defer srv.Close()
	return srv.Issue(mainAccount)
}

// benchFreshManager returns a manager holding ts in a store in memory, on
// the wall clock, in fresh. A nil profile means Codex's, which (among other
// things) makes requests carry the account header. Its endpoint fails the
// benchmark if anything tries to refresh.
func benchFreshManager(b *testing.B, ts oauthtest.TokenSet, profile *oauth.Profile) *engine.Manager {
	b.Helper()
	store := effectstest.NewMemStore()
	store.Put(states.Record{Mode: states.ModeManaged, Tokens: ts.Tokens(),
		AccessExpiry: ts.AccessExpiry, LastRefresh: time.Now()})
	m, err := engine.New(context.Background(), engine.Config{
		Store:   store,
		Profile: profile,
		Endpoint: effectstest.EndpointFunc(func(context.Context, states.Secret) (states.Grant, error) {
			b.Error("a fresh credential was refreshed during the benchmark")
			return states.Grant{}, context.Canceled
		}),
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	if s := m.Snapshot(); s.State != states.Fresh {
		b.Fatalf("manager loaded into %s, want fresh", s.State)
	}
	return m
}

// benchReuseSource is x/oauth2's equivalent of a manager in fresh: a
// ReuseTokenSource caching ts's access token. Its first Token call fetches
// from the underlying source; it is made here, before any timer starts.
func benchReuseSource(b *testing.B, ts oauthtest.TokenSet) oauth2.TokenSource {
	b.Helper()
	src := oauth2.ReuseTokenSource(nil, oauth2.StaticTokenSource(&oauth2.Token{
		AccessToken: ts.AccessToken, TokenType: "Bearer", Expiry: ts.AccessExpiry,
	}))
	if _, err := src.Token(); err != nil {
		b.Fatal(err)
	}
	return src
}

// BenchmarkTokenHotPath: getting the bearer for a request when the
// credential is fresh — Manager.Token against ReuseTokenSource.Token, from
// one goroutine and from GOMAXPROCS goroutines at once. impl=credfsm_ts is
// Manager.TokenSource, the adapter for hosts that want an oauth2.TokenSource;
// it pays for the *oauth2.Token it returns.
func BenchmarkTokenHotPath(b *testing.B) {
	ctx := context.Background()
	ts := benchTokens(b)
	impls := []struct {
		name  string
		token func(b *testing.B) func() (string, error)
	}{
		{"credfsm", func(b *testing.B) func() (string, error) {
			m := benchFreshManager(b, ts, nil)
			return func() (string, error) { return m.Token(ctx) }
		}},
		{"xoauth2", func(b *testing.B) func() (string, error) {
			src := benchReuseSource(b, ts)
			return func() (string, error) {
				t, err := src.Token()
				if err != nil {
					return "", err
				}
				return t.AccessToken, nil
			}
		}},
		{"credfsm_ts", func(b *testing.B) func() (string, error) {
			src := benchFreshManager(b, ts, nil).TokenSource()
			return func() (string, error) {
				t, err := src.Token()
				if err != nil {
					return "", err
				}
				return t.AccessToken, nil
			}
		}},
	}

	for _, impl := range impls {
		b.Run("run=serial/impl="+impl.name, func(b *testing.B) {
			token := impl.token(b)
			b.ReportAllocs()
			for b.Loop() {
				if tok, err := token(); err != nil || tok == "" {
					b.Fatalf("Token = %q, %v", tok, err)
				}
			}
		})
	}
	for _, impl := range impls {
		b.Run("run=parallel/impl="+impl.name, func(b *testing.B) {
			token := impl.token(b)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if tok, err := token(); err != nil || tok == "" {
						b.Errorf("Token = %q, %v", tok, err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkTransport: one GET through an http.Client whose transport adds
// the bearer — Manager.Transport against oauth2.Transport — reading each
// body to the end.
//
// server=loopback sends it to the same loopback server for both, over
// kept-alive connections: the round trip and the server are the same for
// both and dominate, which is the ratio a host sees. server=memory answers
// from memory instead, in a base RoundTripper that does nothing else, so
// that what is left is the transports' own work and the ratio shows it
// undiluted.
//
// impl=credfsm runs with its default (Codex) profile, so it also sends the
// ChatGPT-Account-ID header, as it would for a host that uses it;
// impl=credfsm_rfc6749 sends only the bearer, as x/oauth2 does.
func BenchmarkTransport(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "" {
			http.Error(w, "no bearer", http.StatusUnauthorized)
			return
		}
		io.WriteString(w, `{"ok":true}`)
	}))
	defer srv.Close()
	ts := benchTokens(b)

	impls := []struct {
		name   string
		client func(b *testing.B, base http.RoundTripper) *http.Client
	}{
		{"credfsm", func(b *testing.B, base http.RoundTripper) *http.Client {
			return &http.Client{Transport: benchFreshManager(b, ts, nil).Transport(base)}
		}},
		{"credfsm_rfc6749", func(b *testing.B, base http.RoundTripper) *http.Client {
			p := oauth.RFC6749Profile("https://auth.example.com/token", "client", states.Secret{})
			return &http.Client{Transport: benchFreshManager(b, ts, &p).Transport(base)}
		}},
		{"xoauth2", func(b *testing.B, base http.RoundTripper) *http.Client {
			return &http.Client{Transport: &oauth2.Transport{Source: benchReuseSource(b, ts), Base: base}}
		}},
	}
	runs := []struct {
		name, url string
		parallel  bool
		base      func() (base http.RoundTripper, done func())
	}{
		{"server=loopback/run=serial", srv.URL, false, loopbackBase},
		{"server=loopback/run=parallel", srv.URL, true, loopbackBase},
		{"server=memory/run=serial", "http://api.invalid", false, memoryBase},
	}

	for _, run := range runs {
		get := func(c *http.Client) error {
			req, err := http.NewRequest(http.MethodGet, run.url+"/v1/models", nil)
			if err != nil {
				return err
			}
			resp, err := c.Do(req)
			if err != nil {
				return err
			}
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode != http.StatusOK {
				return &statusError{resp.StatusCode}
			}
			return err
		}
		for _, impl := range impls {
			b.Run(run.name+"/impl="+impl.name, func(b *testing.B) {
				base, done := run.base()
				defer done()
				c := impl.client(b, base)
				if err := get(c); err != nil { // open a connection
					b.Fatal(err)
				}
				b.ReportAllocs()
				b.ResetTimer()
				if !run.parallel {
					for b.Loop() {
						if err := get(c); err != nil {
							b.Fatal(err)
						}
					}
					return
				}
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := get(c); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}

// loopbackBase gives each benchmark its own connection pool, large enough
// that parallel requests never close connections.
func loopbackBase() (http.RoundTripper, func()) {
	t := &http.Transport{MaxIdleConnsPerHost: 64}
	return t, t.CloseIdleConnections
}

// memoryBase answers every request from memory: 200 and a small body when
// it carries a bearer, 401 otherwise.
func memoryBase() (http.RoundTripper, func()) { return memoryAPI{}, func() {} }

type memoryAPI struct{}

func (memoryAPI) RoundTrip(r *http.Request) (*http.Response, error) {
	status := http.StatusOK
	if r.Header.Get("Authorization") == "" {
		status = http.StatusUnauthorized
	}
	return &http.Response{StatusCode: status, Header: http.Header{}, Request: r,
		Body: io.NopCloser(strings.NewReader(`{"ok":true}`))}, nil
}

type statusError struct{ status int }

func (e *statusError) Error() string { return "unexpected status " + http.StatusText(e.status) }
