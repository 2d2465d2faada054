package engine

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/credfsm/credfsm/effects"
	"github.com/credfsm/credfsm/oauth"
	"github.com/credfsm/credfsm/states"
	"github.com/credfsm/credfsm/storage"
	"github.com/credfsm/credfsm/transitions"
)

// EnvAPIKey is the environment variable that, when Config.HonorEnvAPIKey is
// set, supplies an API key that beats every stored credential and is never
// persisted.
const EnvAPIKey = "CODEX_API_KEY"

// Config configures a Manager. The zero value means: the Codex home from the
// environment, the file store, the Codex token endpoint, the wall clock, no
// logging, and the default staleness window and restrictions (none).
type Config struct {
	// Home is the directory holding the credential; "" means $CODEX_HOME,
	// else ~/.codex.
	Home string
	// StoreMode is where the credential lives: file (the default), keyring,
	// auto or ephemeral.
	StoreMode storage.Mode
	// Store, when set, replaces Home and StoreMode: a custom backend, or a
	// test double.
	Store effects.Store
	// KeyringTimeout bounds each keyring call; 0 means the storage default.
	KeyringTimeout time.Duration

	// Profile is the token endpoint to refresh at; nil means
	// oauth.CodexProfile().
	Profile *oauth.Profile
	// HTTPClient is used for the token endpoint; nil means a client with
	// the oauth package's default timeout.
	HTTPClient *http.Client
	// Endpoint, when set, replaces Profile and HTTPClient.
	Endpoint effects.TokenEndpoint

	// Clock and Logger; nil means the wall clock and no logging.
	Clock  effects.Clock
	Logger *slog.Logger

	// Skew is how long before expiry tokens count as stale; 0 means
	// transitions.DefaultSkew (5 minutes).
	Skew time.Duration
	// RecoveryCooldown is how long after a 401 made the manager refresh the
	// tokens a 401 for the new tokens is not met with another refresh but
	// given up on (ErrRefusedAgain); 0 means
	// transitions.DefaultRecoveryCooldown (1 minute). A login, or a load
	// that finds another credential, ends it.
	RecoveryCooldown time.Duration
	// ForcedLoginMethod and ForcedWorkspaceID restrict which credentials
	// may be used; see transitions.Policy.
	ForcedLoginMethod transitions.Method
	ForcedWorkspaceID string

	// HonorEnvAPIKey makes CODEX_API_KEY, when set, the credential: it beats
	// every stored credential and is never persisted.
	HonorEnvAPIKey bool
	// Getenv reads the environment; nil means os.Getenv.
	Getenv func(string) string

	// Table is the rule table; nil means transitions.Default().
	Table *transitions.Table

	// RefreshTimeout bounds a whole refresh (lock, redemption), and
	// separately the save of its result; 0 means DefaultRefreshTimeout.
	// LockTimeout bounds the wait for the store lock; 0 means
	// effects.DefaultLockTimeout. HostTimeout bounds a request to the host
	// refresher; 0 means oauth.DefaultHostTimeout.
	RefreshTimeout time.Duration
	LockTimeout    time.Duration
	HostTimeout    time.Duration

	// OnTransition, when set, is subscribed before the credential is first
	// loaded, so it sees every transition from the very first (see
	// Manager.Subscribe).
	OnTransition func(Transition)

	// StepEveryRequest makes every Token call go through the machine, so
	// that each one is a transition that subscribers see. It is slower; it
	// exists for model-based tests and debugging.
	StepEveryRequest bool
}

// New builds a Manager from cfg and loads the credential. A store that
// cannot be read is not an error here: the manager starts in
// failed_permanent with the reason, which Snapshot and Token report.
func New(ctx context.Context, cfg Config) (*Manager, error) {
	p, err := cfg.parts()
	if err != nil {
		return nil, err
	}
	m := newManager(p)
	if err := m.Reload(ctx); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

func (cfg Config) parts() (parts, error) {
	getenv := cfg.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	clock := cfg.Clock
	if clock == nil {
		clock = effects.SystemClock{}
	}
	if _, err := transitions.ParseMethod(string(cfg.ForcedLoginMethod)); err != nil {
		return parts{}, fmt.Errorf("engine: %w", err)
	}

	store := cfg.Store
	if store == nil {
		home := cfg.Home
		if home == "" {
			h, err := storage.DefaultHome()
			if err != nil {
				return parts{}, fmt.Errorf("engine: %w", err)
			}
			home = h
		}
		s, err := storage.Open(storage.Options{
			Home: home, Mode: cfg.StoreMode, Logger: log, KeyringTimeout: cfg.KeyringTimeout,
		})
		if err != nil {
			return parts{}, fmt.Errorf("engine: %w", err)
		}
		store = s
	}

	profile := oauth.CodexProfile()
	if cfg.Profile != nil {
		profile = *cfg.Profile
	}
	endpoint := cfg.Endpoint
	if endpoint == nil {
		opts := []oauth.Option{oauth.WithGetenv(getenv), oauth.WithClock(clock.Now)}
		if cfg.HTTPClient != nil {
			opts = append(opts, oauth.WithHTTPClient(cfg.HTTPClient))
		}
		c, err := oauth.NewClient(profile, opts...)
		if err != nil {
			return parts{}, fmt.Errorf("engine: %w", err)
		}
		endpoint = c
	}

	refreshTimeout := cfg.RefreshTimeout
	if refreshTimeout <= 0 {
		refreshTimeout = DefaultRefreshTimeout
	}
	p := parts{
		table: cfg.Table,
		policy: transitions.Policy{
			Skew:             cfg.Skew,
			RecoveryCooldown: cfg.RecoveryCooldown,
			ForcedMethod:     cfg.ForcedLoginMethod,
			ForcedWorkspace:  cfg.ForcedWorkspaceID,
		},
		store:            store,
		endpoint:         endpoint,
		clock:            clock,
		log:              log,
		lockTimeout:      cfg.LockTimeout,
		refreshTimeout:   refreshTimeout,
		hostTimeout:      cfg.HostTimeout,
		stepEveryRequest: cfg.StepEveryRequest,
		accountHeader:    profile.Name == oauth.CodexProfile().Name,
		onTransition:     cfg.OnTransition,
	}
	if cfg.HonorEnvAPIKey {
		p.loadEnv = func() (states.Record, bool) {
			key := strings.TrimSpace(getenv(EnvAPIKey))
			if key == "" {
				return states.Record{}, false
			}
			return states.Record{Mode: states.ModeAPIKey, APIKey: states.NewSecret(key)}, true
		}
	}
	return p, nil
}
