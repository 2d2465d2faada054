package oauth_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credfsm/credfsm/oauth"
	"github.com/credfsm/credfsm/states"
)

func asRefreshError(t *testing.T, err error) *states.RefreshError {
	t.Helper()
	var re *states.RefreshError
	if !errors.As(err, &re) {
		t.Fatalf("err = %v (%T), want a *states.RefreshError", err, err)
	}
	return re
}

func clientFor(t *testing.T, url string, opts ...oauth.Option) *oauth.Client {
	t.Helper()
	p := oauth.CodexProfile()
	p.TokenURL = url
	p.URLEnv = ""
	c, err := oauth.NewClient(p, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const secretRT = "rt_transport_0123456789abcdef"

func TestRedeemTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The server notices a client leaving only once the body is read.
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)

	c := clientFor(t, srv.URL, oauth.WithTimeout(50*time.Millisecond))
	start := time.Now()
	_, err := c.Redeem(context.Background(), states.NewSecret(secretRT))
	re := asRefreshError(t, err)
	if re.Permanent || re.Status != 0 {
		t.Errorf("got %+v, want transient without status", re)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want it to wrap context.DeadlineExceeded", err)
	}
	if !strings.Contains(re.Detail, "50ms") {
		t.Errorf("Detail = %q, want it to name the timeout", re.Detail)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Redeem took %v; the timeout did not apply", d)
	}
	assertClean(t, err, secretRT)
}

func TestRedeemCallerCancels(t *testing.T) {
	arrived := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		close(arrived)
		<-r.Context().Done()
	}))
	defer srv.Close()

	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-arrived; cancel() }()
	_, err := clientFor(t, srv.URL).Redeem(ctx, states.NewSecret(secretRT))
	re := asRefreshError(t, err)
	if re.Permanent {
		t.Errorf("got %+v, want transient", re)
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want it to wrap context.Canceled", err)
	}
	if !strings.Contains(re.Detail, "caller") {
		t.Errorf("Detail = %q, want it to say the caller gave up", re.Detail)
	}
}

func TestRedeemNetworkError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there any more

	_, err := clientFor(t, url).Redeem(context.Background(), states.NewSecret(secretRT))
	re := asRefreshError(t, err)
	if re.Permanent || re.Status != 0 || re.Err == nil {
		t.Errorf("got %+v, want transient with a cause and no status", re)
	}
	assertClean(t, err, secretRT)
}

// A response cut off mid-body is transient and keeps the status it had.
func TestRedeemBrokenBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" +
			"Content-Length: 500\r\n\r\n{\"access_token\":\"partial")
		_ = buf.Flush()
	}))
	defer srv.Close()

	_, err := clientFor(t, srv.URL).Redeem(context.Background(), states.NewSecret(secretRT))
	re := asRefreshError(t, err)
	if re.Permanent || re.Status != 200 {
		t.Errorf("got %+v, want transient with status 200", re)
	}
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("err = %v, want it to wrap io.ErrUnexpectedEOF", err)
	}
	assertClean(t, err, secretRT)
}

// The body cap is exact: a body of MaxBodySize bytes is read whole, one byte
// more is refused.
func TestRedeemBodyCap(t *testing.T) {
	body := func(size int) string {
		head := `{"access_token":"at_cap","pad":"`
		tail := `"}`
		return head + strings.Repeat("x", size-len(head)-len(tail)) + tail
	}
	tests := []struct {
		name    string
		size    int
		wantErr error
	}{
		{"exactly the cap", oauth.MaxBodySize, nil},
		{"one byte over", oauth.MaxBodySize + 1, oauth.ErrBodyTooLarge},
		{"far over", 4 * oauth.MaxBodySize, oauth.ErrBodyTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := body(tt.size)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, b)
			}))
			defer srv.Close()

			g, err := clientFor(t, srv.URL).Redeem(context.Background(), states.NewSecret(secretRT))
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Redeem: %v", err)
				}
				if g.AccessToken.Reveal() != "at_cap" {
					t.Errorf("access token = %q, want at_cap", g.AccessToken.Reveal())
				}
				return
			}
			re := asRefreshError(t, err)
			if re.Permanent || !errors.Is(err, tt.wantErr) {
				t.Errorf("got %v, want transient wrapping %v", err, tt.wantErr)
			}
			if len(re.Detail) > oauth.DetailLimit {
				t.Errorf("Detail is %d bytes, want <= %d", len(re.Detail), oauth.DetailLimit)
			}
		})
	}
}

// A redirect is reported, not followed: following a 307 would post the
// refresh token to the host it names.
func TestRedeemDoesNotFollowRedirects(t *testing.T) {
	var elsewhere atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
		_, _ = io.WriteString(w, `{"access_token":"stolen"}`)
	}))
	defer target.Close()

	for _, status := range []int{301, 302, 303, 307, 308} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target.URL+"/token", status)
		}))
		_, err := clientFor(t, srv.URL, oauth.WithHTTPClient(&http.Client{})).
			Redeem(context.Background(), states.NewSecret(secretRT))
		srv.Close()

		re := asRefreshError(t, err)
		if re.Permanent || re.Status != status || !errors.Is(err, oauth.ErrRedirect) {
			t.Errorf("status %d: got %v, want transient wrapping ErrRedirect", status, err)
		}
	}
	if n := elsewhere.Load(); n != 0 {
		t.Errorf("redirect target saw %d requests, want 0", n)
	}
}

// WithClock drives the expiry computed from expires_in.
func TestRedeemUsesTheClock(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"access_token":"at","expires_in":120}`)
	}))
	defer srv.Close()

	now := time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC)
	g, err := clientFor(t, srv.URL, oauth.WithClock(func() time.Time { return now })).
		Redeem(context.Background(), states.NewSecret(secretRT))
	if err != nil {
		t.Fatal(err)
	}
	if want := now.Add(2 * time.Minute); !g.AccessExpiry.Equal(want) {
		t.Errorf("AccessExpiry = %v, want %v", g.AccessExpiry, want)
	}
}

// assertClean fails if err's text, or any error it wraps, holds a token.
func assertClean(t *testing.T, err error, tokens ...string) {
	t.Helper()
	for e := err; e != nil; e = errors.Unwrap(e) {
		for _, tok := range tokens {
			if strings.Contains(e.Error(), tok) {
				t.Errorf("error %q contains a token", e.Error())
			}
		}
	}
}
