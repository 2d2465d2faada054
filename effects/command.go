package effects

import (
	"fmt"
	"time"

	"github.com/credfsm/credfsm/states"
)

// Kind names a kind of command. Commands are imperative: they say what must
// be done, and the runner does it.
type Kind uint8

const (
	// KindPersistRecord saves the record (compare-and-swap on a version).
	// Outcome: Persisted or PersistFailed.
	KindPersistRecord Kind = iota
	// KindDeleteStores removes the credential from every store.
	// Outcome: StoresCleared.
	KindDeleteStores
	// KindLockAndReread takes the store's cross-process lock and reads the
	// store again. Outcome: StoreReread or RereadFailed. The lock stays held
	// until a ReleaseLock command.
	KindLockAndReread
	// KindReleaseLock releases the lock taken by LockAndReread, if held.
	// No outcome.
	KindReleaseLock
	// KindRedeemRefreshToken calls the token endpoint. Outcome:
	// RefreshSucceeded, RefreshFailed or RefreshRejected.
	KindRedeemRefreshToken
	// KindAskHost asks the embedding host for new tokens. Outcome:
	// HostRefreshSucceeded or HostRefreshFailed.
	KindAskHost
	// KindWakeAt sets a timer; when it fires a Woke event comes back.
	// No immediate outcome.
	KindWakeAt
	// KindNotifyObservers tells waiting callers that the credential they
	// wait for has been settled (a new token, a failure). No outcome.
	KindNotifyObservers

	numKinds = iota
)

var kindNames = [numKinds]string{
	KindPersistRecord:      "PersistRecord",
	KindDeleteStores:       "DeleteStores",
	KindLockAndReread:      "LockAndReread",
	KindReleaseLock:        "ReleaseLock",
	KindRedeemRefreshToken: "RedeemRefreshToken",
	KindAskHost:            "AskHost",
	KindWakeAt:             "WakeAt",
	KindNotifyObservers:    "NotifyObservers",
}

// String returns the command kind's name, e.g. "PersistRecord".
func (k Kind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return fmt.Sprintf("command(%d)", uint8(k))
}

// HasOutcome reports whether running a command of this kind produces an
// event that must be fed back into the machine straight away.
func (k Kind) HasOutcome() bool {
	switch k {
	case KindPersistRecord, KindDeleteStores, KindLockAndReread,
		KindRedeemRefreshToken, KindAskHost:
		return true
	}
	return false
}

// MarshalText encodes the kind as its name.
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// Kinds returns every command kind in declaration order.
func Kinds() []Kind {
	all := make([]Kind, numKinds)
	for i := range all {
		all[i] = Kind(i)
	}
	return all
}

// Command is one side effect, as data. The set is closed: the concrete types
// are the ones in this file. Every command carries the generation it was
// issued for, and the runner stamps that generation on the outcome.
type Command interface {
	Kind() Kind
	isCommand()
}

// PersistRecord saves Record if the store still holds Expected.
type PersistRecord struct {
	Generation uint64
	Record     states.Record
	Expected   states.Version
}

// DeleteStores removes the credential from every store.
type DeleteStores struct{ Generation uint64 }

// LockAndReread takes the store's lock and reads the store again.
type LockAndReread struct{ Generation uint64 }

// ReleaseLock releases the store's lock if it is held.
type ReleaseLock struct{}

// RedeemRefreshToken exchanges RefreshToken at the token endpoint.
type RedeemRefreshToken struct {
	Generation   uint64
	RefreshToken states.Secret
}

// AskHost asks the host for new tokens for PreviousAccountID's session.
type AskHost struct {
	Generation        uint64
	PreviousAccountID string
}

// WakeAt asks for a Woke event at At.
type WakeAt struct {
	Generation uint64
	At         time.Time
}

// NotifyObservers wakes callers waiting for the credential to settle.
type NotifyObservers struct{ Generation uint64 }

func (PersistRecord) Kind() Kind      { return KindPersistRecord }
func (DeleteStores) Kind() Kind       { return KindDeleteStores }
func (LockAndReread) Kind() Kind      { return KindLockAndReread }
func (ReleaseLock) Kind() Kind        { return KindReleaseLock }
func (RedeemRefreshToken) Kind() Kind { return KindRedeemRefreshToken }
func (AskHost) Kind() Kind            { return KindAskHost }
func (WakeAt) Kind() Kind             { return KindWakeAt }
func (NotifyObservers) Kind() Kind    { return KindNotifyObservers }

func (PersistRecord) isCommand()      {}
func (DeleteStores) isCommand()       {}
func (LockAndReread) isCommand()      {}
func (ReleaseLock) isCommand()        {}
func (RedeemRefreshToken) isCommand() {}
func (AskHost) isCommand()            {}
func (WakeAt) isCommand()             {}
func (NotifyObservers) isCommand()    {}
