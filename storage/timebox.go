package storage

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/zalando/go-keyring"
)

// DefaultKeyringTimeout bounds every keyring call when no other bound is
// configured. An unlocked keyring answers in milliseconds; a locked Secret
// Service may wait forever for a password prompt nobody sees, and must not
// hang the host.
const DefaultKeyringTimeout = 3 * time.Second

// keyringClient makes time-boxed calls to a KeyringProvider.
type keyringClient struct {
	provider KeyringProvider
	timeout  time.Duration
}

// gate serialises the calls to one keyring entry across the process and
// remembers a call that was abandoned but has not returned.
type gate struct {
	sem chan struct{} // held by the call in flight

	mu        sync.Mutex
	abandoned bool // the call in flight timed out and is still running
}

var keyringGates struct {
	mu sync.Mutex
	m  map[string]*gate
}

func gateFor(entry string) *gate {
	keyringGates.mu.Lock()
	defer keyringGates.mu.Unlock()
	if keyringGates.m == nil {
		keyringGates.m = map[string]*gate{}
	}
	g, ok := keyringGates.m[entry]
	if !ok {
		g = &gate{sem: make(chan struct{}, 1)}
		keyringGates.m[entry] = g
	}
	return g
}

// call runs fn in its own goroutine and waits for it until the time box
// (or ctx) runs out.
//
// Calls to one entry run one at a time, so a late answer can never land
// after a newer call's. While an abandoned call is still running, new calls
// fail at once instead of each waiting out the time box behind it: a keyring
// that did not answer in three seconds is not going to answer the next
// caller either.
//
// TODO: an abandoned call's goroutine cannot be cancelled — neither
// go-keyring nor the platform APIs take a context — so it lives until the
// keyring answers, and a write that was given up on may still complete
// later. The gate keeps that write from reordering with newer ones; the
// caller has already been told it failed.
func (c keyringClient) call(ctx context.Context, op, entry string,
	fn func(KeyringProvider) (string, error)) (string, error) {
	g := gateFor(entry)
	g.mu.Lock()
	pending := g.abandoned
	g.mu.Unlock()
	if pending {
		return "", &KeyringError{Op: op, Entry: entry, Pending: true}
	}

	// start is taken before the deadline is set, so that a call abandoned
	// at the deadline reports a wait of at least the time box.
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	select {
	case g.sem <- struct{}{}:
	case <-ctx.Done():
		return "", &KeyringError{Op: op, Entry: entry, Waited: time.Since(start), Err: ctx.Err()}
	}

	type result struct {
		value string
		err   error
	}
	done := make(chan result, 1)
	go func() {
		v, err := guard(c.provider, fn)
		// Sending under g.mu orders this against the time-out below: if
		// the waiter saw no result while holding g.mu, the flag it sets
		// is cleared here afterwards.
		g.mu.Lock()
		done <- result{v, err}
		g.abandoned = false
		g.mu.Unlock()
		<-g.sem
	}()

	select {
	case r := <-done:
		return r.value, r.err
	case <-ctx.Done():
		g.mu.Lock()
		defer g.mu.Unlock()
		select {
		case r := <-done: // answered at the last moment
			return r.value, r.err
		default:
		}
		g.abandoned = true
		return "", &KeyringError{Op: op, Entry: entry, Waited: time.Since(start), Err: ctx.Err()}
	}
}

// guard runs fn, turning a panic in a keyring provider into an error.
func guard(p KeyringProvider, fn func(KeyringProvider) (string, error)) (v string, err error) {
	defer func() {
		if r := recover(); r != nil {
			v, err = "", errors.New("the keyring provider panicked")
		}
	}()
	return fn(p)
}

// get reads an entry; found is false when it does not exist.
func (c keyringClient) get(ctx context.Context,
	account string) (value string, found bool, err error) {
	entry := keyringEntry(account)
	v, err := c.call(ctx, "read", entry, func(p KeyringProvider) (string, error) {
		return p.Get(KeyringService, account)
	})
	switch {
	case errors.Is(err, keyring.ErrNotFound):
		return "", false, nil
	case err != nil:
		return "", false, asKeyringError("read", entry, err)
	}
	return v, true, nil
}

// set writes an entry.
func (c keyringClient) set(ctx context.Context, account, value string) error {
	entry := keyringEntry(account)
	_, err := c.call(ctx, "write", entry, func(p KeyringProvider) (string, error) {
		return "", p.Set(KeyringService, account, value)
	})
	if err != nil {
		return asKeyringError("write", entry, err)
	}
	return nil
}

// del deletes an entry; found is false when there was none.
func (c keyringClient) del(ctx context.Context, account string) (found bool, err error) {
	entry := keyringEntry(account)
	_, err = c.call(ctx, "delete", entry, func(p KeyringProvider) (string, error) {
		return "", p.Delete(KeyringService, account)
	})
	switch {
	case errors.Is(err, keyring.ErrNotFound):
		return false, nil
	case err != nil:
		return false, asKeyringError("delete", entry, err)
	}
	return true, nil
}

// asKeyringError wraps a provider's error, leaving a *KeyringError as is.
func asKeyringError(op, entry string, err error) error {
	var ke *KeyringError
	if errors.As(err, &ke) {
		return err
	}
	return &KeyringError{Op: op, Entry: entry, Err: err}
}

// keyringEntry names an entry for people and errors: service/account.
func keyringEntry(account string) string {
	return fmt.Sprintf("%s/%s", KeyringService, account)
}
