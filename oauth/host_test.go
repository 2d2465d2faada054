package oauth_test

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/credfsm/credfsm/oauth"
	"github.com/credfsm/credfsm/states"
)

// testJWT builds an unsigned JWT around a JSON payload.
func testJWT(payload string) string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(`{"alg":"none"}`)) + "." +
		enc.EncodeToString([]byte(payload)) + ".sig"
}

func TestHostRefresher(t *testing.T) {
	id := testJWT(`{"email":"h@example.com","https://api.openai.com/auth":` +
		`{"chatgpt_plan_type":"team","chatgpt_account_id":"ws-2"}}`)
	access := testJWT(`{"exp":1900000000}`)

	tests := []struct {
		name    string
		tokens  oauth.HostTokens
		err     error
		want    states.Grant
		wantErr error // sentinel the error must wrap; nil for success
	}{
		{
			name:   "tokens",
			tokens: oauth.HostTokens{AccessToken: states.NewSecret(access), IDToken: states.NewSecret(id)},
			want: states.Grant{
				IDToken: states.NewSecret(id), AccessToken: states.NewSecret(access),
				Claims:       states.Claims{Email: "h@example.com", Plan: states.PlanTeam, AccountID: "ws-2"},
				AccessExpiry: time.Unix(1900000000, 0).UTC(),
			},
		},
		{
			name:   "opaque access token",
			tokens: oauth.HostTokens{AccessToken: states.NewSecret("opaque"), IDToken: states.NewSecret(id)},
			want: states.Grant{
				IDToken: states.NewSecret(id), AccessToken: states.NewSecret("opaque"),
				Claims: states.Claims{Email: "h@example.com", Plan: states.PlanTeam, AccountID: "ws-2"},
			},
		},
		{
			name: "unparsable id token",
			tokens: oauth.HostTokens{
				AccessToken: states.NewSecret(access), IDToken: states.NewSecret("garbage"),
			},
			wantErr: oauth.ErrMalformedToken,
		},
		{
			name:    "no id token",
			tokens:  oauth.HostTokens{AccessToken: states.NewSecret(access)},
			wantErr: oauth.ErrHostTokens,
		},
		{
			name:    "no access token",
			tokens:  oauth.HostTokens{IDToken: states.NewSecret(id)},
			wantErr: oauth.ErrHostTokens,
		},
		{
			name:    "host error",
			err:     errSignedOut,
			wantErr: errSignedOut,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got oauth.HostRequest
			host := hostFunc(func(ctx context.Context, req oauth.HostRequest) (oauth.HostTokens, error) {
				got = req
				return tt.tokens, tt.err
			})
			g, err := oauth.NewHostRefresher(host, 0).RefreshHost(context.Background(), "acct-prev")

			want := oauth.HostRequest{Reason: "unauthorized", PreviousAccountID: "acct-prev"}
			if got != want {
				t.Errorf("host was asked %+v, want %+v", got, want)
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want it to wrap %v", err, tt.wantErr)
				}
				assertClean(t, err, access)
				return
			}
			if err != nil {
				t.Fatalf("RefreshHost: %v", err)
			}
			if diff := cmp.Diff(tt.want, g); diff != "" {
				t.Errorf("grant mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

var errSignedOut = errors.New("the user signed out of the IDE")

// hostFunc is a short name for oauth.TokenHostFunc.
type hostFunc = oauth.TokenHostFunc

// A host that ignores its context still cannot hold the refresher past its
// timeout.
func TestHostRefresherTimeout(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	var sawDeadline sync.WaitGroup
	sawDeadline.Add(1)
	host := hostFunc(func(ctx context.Context, _ oauth.HostRequest) (oauth.HostTokens, error) {
		if _, ok := ctx.Deadline(); ok {
			sawDeadline.Done()
		}
		<-release // ignores ctx on purpose
		return oauth.HostTokens{}, nil
	})

	start := time.Now()
	_, err := oauth.NewHostRefresher(host, 30*time.Millisecond).RefreshHost(context.Background(), "")
	if !errors.Is(err, oauth.ErrHostTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want ErrHostTimeout and context.DeadlineExceeded", err)
	}
	if !strings.Contains(err.Error(), "30ms") {
		t.Errorf("error %q does not name the timeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("RefreshHost took %v", d)
	}
	sawDeadline.Wait() // the host was given a context with the deadline
}

// A host that honours its context and returns the context's error is
// reported the same way as one that overran.
func TestHostRefresherTimeoutHonoured(t *testing.T) {
	host := hostFunc(func(ctx context.Context, _ oauth.HostRequest) (oauth.HostTokens, error) {
		<-ctx.Done()
		return oauth.HostTokens{}, ctx.Err()
	})
	_, err := oauth.NewHostRefresher(host, 20*time.Millisecond).RefreshHost(context.Background(), "")
	if !errors.Is(err, oauth.ErrHostTimeout) {
		t.Fatalf("err = %v, want ErrHostTimeout", err)
	}
}

// When the caller gives up, that is not the host's timeout.
func TestHostRefresherCallerCancels(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	host := hostFunc(func(ctx context.Context, _ oauth.HostRequest) (oauth.HostTokens, error) {
		cancel()
		<-ctx.Done()
		return oauth.HostTokens{}, ctx.Err()
	})
	_, err := oauth.NewHostRefresher(host, time.Minute).RefreshHost(ctx, "")
	if !errors.Is(err, context.Canceled) || errors.Is(err, oauth.ErrHostTimeout) {
		t.Fatalf("err = %v, want context.Canceled and not ErrHostTimeout", err)
	}
}

// The default timeout is ten seconds.
func TestHostRefresherDefaultTimeout(t *testing.T) {
	var got time.Duration
	host := hostFunc(func(ctx context.Context, _ oauth.HostRequest) (oauth.HostTokens, error) {
		dl, _ := ctx.Deadline()
		got = time.Until(dl)
		return oauth.HostTokens{}, errSignedOut
	})
	_, _ = oauth.NewHostRefresher(host, 0).RefreshHost(context.Background(), "")
	if got <= 9*time.Second || got > 10*time.Second {
		t.Errorf("host's deadline was %v away, want about 10s", got)
	}
}

// A host's error text is sanitised; the error itself stays reachable.
func TestHostRefresherSanitisesHostErrors(t *testing.T) {
	leaky := errors.New("refresh failed for access_token=sk-live-0123456789abcdefghij")
	host := oauth.TokenHostFunc(func(context.Context, oauth.HostRequest) (oauth.HostTokens, error) {
		return oauth.HostTokens{}, leaky
	})
	_, err := oauth.NewHostRefresher(host, 0).RefreshHost(context.Background(), "")
	if !errors.Is(err, leaky) {
		t.Errorf("err = %v, want it to wrap the host's error", err)
	}
	if strings.Contains(err.Error(), "sk-live") {
		t.Errorf("error %q repeats the host's token", err)
	}
}

// A host that panics does not take the process down.
func TestHostRefresherHostPanics(t *testing.T) {
	host := oauth.TokenHostFunc(func(context.Context, oauth.HostRequest) (oauth.HostTokens, error) {
		panic("host bug")
	})
	_, err := oauth.NewHostRefresher(host, 0).RefreshHost(context.Background(), "")
	if err == nil || !strings.Contains(err.Error(), "panicked") {
		t.Errorf("err = %v, want a panic report", err)
	}
}

func TestHostRefresherWithoutHost(t *testing.T) {
	if _, err := oauth.NewHostRefresher(nil, 0).RefreshHost(context.Background(), ""); err == nil {
		t.Error("RefreshHost without a host succeeded")
	}
}
