package states

import (
	"fmt"
	"time"
)

// EventKind names a kind of event. Event kinds are past tense: something
// happened (a host asked for a token, a refresh succeeded), and the machine
// decides what follows.
type EventKind uint8

const (
	// Inputs from the host or the clock.
	KindLoaded           EventKind = iota // the store was read at start or on reload
	KindTokenRequested                    // a caller needs a bearer token now
	KindRefreshRequested                  // a caller asked for a refresh now
	KindUnauthorized                      // the API answered 401 for a token of some generation
	KindLoginRequested                    // a caller signed in with a new credential
	KindLogoutRequested                   // a caller signed out
	KindWoke                              // a timer set by a WakeAt command fired

	// Outcomes of commands, fed back by the effects runner.
	KindStoreReread          // the store was locked and re-read before a redemption
	KindRereadFailed         // locking or re-reading the store failed
	KindRefreshSucceeded     // the token endpoint returned new tokens
	KindRefreshFailed        // the token endpoint failed transiently
	KindRefreshRejected      // the token endpoint refused the refresh token for good
	KindHostRefreshSucceeded // the host returned new host-managed tokens
	KindHostRefreshFailed    // the host could not provide new tokens
	KindPersisted            // a record was saved
	KindPersistFailed        // a save failed (conflict or I/O)
	KindStoresCleared        // every store was asked to delete the credential

	numEventKinds = iota
)

var eventNames = [numEventKinds]string{
	KindLoaded:               "loaded",
	KindTokenRequested:       "token_requested",
	KindRefreshRequested:     "refresh_requested",
	KindUnauthorized:         "unauthorized",
	KindLoginRequested:       "login_requested",
	KindLogoutRequested:      "logout_requested",
	KindWoke:                 "woke",
	KindStoreReread:          "store_reread",
	KindRereadFailed:         "reread_failed",
	KindRefreshSucceeded:     "refresh_succeeded",
	KindRefreshFailed:        "refresh_failed",
	KindRefreshRejected:      "refresh_rejected",
	KindHostRefreshSucceeded: "host_refresh_succeeded",
	KindHostRefreshFailed:    "host_refresh_failed",
	KindPersisted:            "persisted",
	KindPersistFailed:        "persist_failed",
	KindStoresCleared:        "stores_cleared",
}

// String returns the kind's snake_case name.
func (k EventKind) String() string {
	if k < numEventKinds {
		return eventNames[k]
	}
	return fmt.Sprintf("event(%d)", uint8(k))
}

// Valid reports whether k is a known event kind.
func (k EventKind) Valid() bool { return k < numEventKinds }

// MarshalText encodes the kind as its name.
func (k EventKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// ParseEventKind maps a name back to its kind.
func ParseEventKind(name string) (EventKind, error) {
	for i, n := range eventNames {
		if n == name {
			return EventKind(i), nil
		}
	}
	return 0, fmt.Errorf("states: unknown event kind %q", name)
}

// EventKinds returns every event kind in declaration order.
func EventKinds() []EventKind {
	all := make([]EventKind, numEventKinds)
	for i := range all {
		all[i] = EventKind(i)
	}
	return all
}

// Event is an input to the machine. Every event carries the time it happened:
// the machine never reads a clock. Outcomes of commands also carry the
// generation they were started for; an outcome for an older generation
// changes nothing.
//
// The set of events is closed: the concrete types are the ones in this file.
type Event interface {
	Kind() EventKind
	Time() time.Time
	isEvent()
}

// Loaded is the outcome of reading the store at start-up or on reload.
// Record is zero when nothing is stored. Err is set when something is stored
// but cannot be read; it never contains a secret.
type Loaded struct {
	At      time.Time
	Record  Record
	Version Version
	FromEnv bool // the credential came from the environment and is never persisted
	Err     error
}

// TokenRequested: a caller needs a bearer token.
type TokenRequested struct{ At time.Time }

// RefreshRequested: a caller asked for a refresh now, whether or not the
// tokens are stale.
type RefreshRequested struct{ At time.Time }

// Unauthorized: the API answered 401 for a token of the given generation.
type Unauthorized struct {
	At         time.Time
	Generation uint64
}

// LoginRequested: a caller signed in with a new credential.
type LoginRequested struct {
	At     time.Time
	Record Record
}

// LogoutRequested: a caller signed out.
type LogoutRequested struct{ At time.Time }

// Woke: a timer set by a WakeAt command for the given generation fired.
type Woke struct {
	At         time.Time
	Generation uint64
}

// StoreReread is the outcome of locking and re-reading the store before a
// redemption. Record is zero when the store is now empty.
type StoreReread struct {
	At         time.Time
	Generation uint64
	Record     Record
	Version    Version
}

// RereadFailed: the store could not be locked or re-read. Unreadable is true
// when it holds something that cannot be parsed.
type RereadFailed struct {
	At         time.Time
	Generation uint64
	Unreadable bool
	Err        error
}

// RefreshSucceeded: the token endpoint returned new tokens.
type RefreshSucceeded struct {
	At         time.Time
	Generation uint64
	Grant      Grant
}

// RefreshFailed: the redemption failed in a way that may pass (network
// error, timeout, 5xx, 429, a body that is not JSON). Jitter, in [0, 1), is
// drawn by the runner so that the machine can spread retries without a
// random source of its own.
type RefreshFailed struct {
	At         time.Time
	Generation uint64
	Err        *RefreshError
	Jitter     float64
}

// RefreshRejected: the provider refused the refresh token for good.
type RefreshRejected struct {
	At         time.Time
	Generation uint64
	Err        *RefreshError
}

// HostRefreshSucceeded: the host returned new tokens.
type HostRefreshSucceeded struct {
	At         time.Time
	Generation uint64
	Grant      Grant
}

// HostRefreshFailed: the host returned an error, timed out, returned an id
// token that cannot be parsed, or no host refresher is registered.
type HostRefreshFailed struct {
	At         time.Time
	Generation uint64
	Err        error
	Jitter     float64
}

// Persisted: a record was saved; Version is what the store now holds.
type Persisted struct {
	At         time.Time
	Generation uint64
	Version    Version
}

// PersistFailed: a save failed. Conflict is true when the store had changed
// since it was read (the compare-and-swap refused the save).
type PersistFailed struct {
	At         time.Time
	Generation uint64
	Conflict   bool
	Err        error
}

// StoresCleared: every store was asked to delete the credential. Removals
// says what happened in each backend; Err joins the failures, if any.
type StoresCleared struct {
	At         time.Time
	Generation uint64
	Removals   []Removal
	Err        error
}

func (Loaded) Kind() EventKind               { return KindLoaded }
func (TokenRequested) Kind() EventKind       { return KindTokenRequested }
func (RefreshRequested) Kind() EventKind     { return KindRefreshRequested }
func (Unauthorized) Kind() EventKind         { return KindUnauthorized }
func (LoginRequested) Kind() EventKind       { return KindLoginRequested }
func (LogoutRequested) Kind() EventKind      { return KindLogoutRequested }
func (Woke) Kind() EventKind                 { return KindWoke }
func (StoreReread) Kind() EventKind          { return KindStoreReread }
func (RereadFailed) Kind() EventKind         { return KindRereadFailed }
func (RefreshSucceeded) Kind() EventKind     { return KindRefreshSucceeded }
func (RefreshFailed) Kind() EventKind        { return KindRefreshFailed }
func (RefreshRejected) Kind() EventKind      { return KindRefreshRejected }
func (HostRefreshSucceeded) Kind() EventKind { return KindHostRefreshSucceeded }
func (HostRefreshFailed) Kind() EventKind    { return KindHostRefreshFailed }
func (Persisted) Kind() EventKind            { return KindPersisted }
func (PersistFailed) Kind() EventKind        { return KindPersistFailed }
func (StoresCleared) Kind() EventKind        { return KindStoresCleared }

func (e Loaded) Time() time.Time               { return e.At }
func (e TokenRequested) Time() time.Time       { return e.At }
func (e RefreshRequested) Time() time.Time     { return e.At }
func (e Unauthorized) Time() time.Time         { return e.At }
func (e LoginRequested) Time() time.Time       { return e.At }
func (e LogoutRequested) Time() time.Time      { return e.At }
func (e Woke) Time() time.Time                 { return e.At }
func (e StoreReread) Time() time.Time          { return e.At }
func (e RereadFailed) Time() time.Time         { return e.At }
func (e RefreshSucceeded) Time() time.Time     { return e.At }
func (e RefreshFailed) Time() time.Time        { return e.At }
func (e RefreshRejected) Time() time.Time      { return e.At }
func (e HostRefreshSucceeded) Time() time.Time { return e.At }
func (e HostRefreshFailed) Time() time.Time    { return e.At }
func (e Persisted) Time() time.Time            { return e.At }
func (e PersistFailed) Time() time.Time        { return e.At }
func (e StoresCleared) Time() time.Time        { return e.At }

func (Loaded) isEvent()               {}
func (TokenRequested) isEvent()       {}
func (RefreshRequested) isEvent()     {}
func (Unauthorized) isEvent()         {}
func (LoginRequested) isEvent()       {}
func (LogoutRequested) isEvent()      {}
func (Woke) isEvent()                 {}
func (StoreReread) isEvent()          {}
func (RereadFailed) isEvent()         {}
func (RefreshSucceeded) isEvent()     {}
func (RefreshFailed) isEvent()        {}
func (RefreshRejected) isEvent()      {}
func (HostRefreshSucceeded) isEvent() {}
func (HostRefreshFailed) isEvent()    {}
func (Persisted) isEvent()            {}
func (PersistFailed) isEvent()        {}
func (StoresCleared) isEvent()        {}

// OutcomeGeneration returns the generation an outcome event was started for,
// and false for events that are not outcomes of a command.
func OutcomeGeneration(ev Event) (uint64, bool) {
	switch e := ev.(type) {
	case Woke:
		return e.Generation, true
	case StoreReread:
		return e.Generation, true
	case RereadFailed:
		return e.Generation, true
	case RefreshSucceeded:
		return e.Generation, true
	case RefreshFailed:
		return e.Generation, true
	case RefreshRejected:
		return e.Generation, true
	case HostRefreshSucceeded:
		return e.Generation, true
	case HostRefreshFailed:
		return e.Generation, true
	case Persisted:
		return e.Generation, true
	case PersistFailed:
		return e.Generation, true
	case StoresCleared:
		return e.Generation, true
	}
	return 0, false
}
