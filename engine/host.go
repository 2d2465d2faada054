package engine

import (
	"context"
	"sync"
	"time"

	"github.com/credfsm/credfsm/effects"
	"github.com/credfsm/credfsm/oauth"
	"github.com/credfsm/credfsm/states"
)

// hostSwitch is the runner's host refresher. The host can be set at any
// time, also while a flight runs, so it is read under a lock.
type hostSwitch struct {
	mu      sync.Mutex
	timeout time.Duration
	host    *oauth.HostRefresher
}

func (h *hostSwitch) set(t oauth.TokenHost) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if t == nil {
		h.host = nil
		return
	}
	h.host = oauth.NewHostRefresher(t, h.timeout)
}

// RefreshHost implements effects.HostRefresher.
func (h *hostSwitch) RefreshHost(ctx context.Context, previousAccountID string) (states.Grant, error) {
	h.mu.Lock()
	host := h.host
	h.mu.Unlock()
	if host == nil {
		return states.Grant{}, effects.ErrNoHostRefresher
	}
	return host.RefreshHost(ctx, previousAccountID)
}
