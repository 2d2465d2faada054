package transitions

import "github.com/credfsm/credfsm/states"

// The guards of the table. Each is pure and named as it reads in the
// statechart: the name says when the rule applies.

// eventRecord returns the credential an event brings, if any.
func eventRecord(ev states.Event) states.Record {
	switch e := ev.(type) {
	case states.Loaded:
		return e.Record
	case states.LoginRequested:
		return e.Record
	case states.StoreReread:
		return e.Record
	}
	return states.Record{}
}

// eventGeneration returns the generation an event refers to.
func eventGeneration(ev states.Event) uint64 {
	switch e := ev.(type) {
	case states.Unauthorized:
		return e.Generation
	case states.Woke:
		return e.Generation
	}
	g, _ := states.OutcomeGeneration(ev)
	return g
}

// holdsSpent reports whether rec holds the refresh token this process has
// already redeemed: then memory holds its successor, and rec nothing newer.
func holdsSpent(rec states.Record, ext *states.Extended) bool {
	rt := rec.Tokens.RefreshToken
	return rec.Mode == states.ModeManaged && !rt.IsZero() && rt.Equal(ext.Spent)
}

var (
	unreadable = Guard{"unreadable", func(in Input) bool {
		e, ok := in.Event.(states.Loaded)
		return ok && e.Err != nil
	}}

	// unsavedStoreStale: the tokens in memory could not be saved, and the
	// store holds nothing newer: either nobody wrote it since, or it still
	// holds the refresh token this process spent to get the unsaved tokens.
	unsavedStoreStale = Guard{"unsaved, store holds nothing newer", func(in Input) bool {
		e, ok := in.Event.(states.Loaded)
		return ok && in.Ext.Unsaved && e.Err == nil && !e.FromEnv &&
			(e.Version == in.Ext.Version || holdsSpent(e.Record, in.Ext))
	}}

	// nothingNewStored: the store holds the credential that failed, or the
	// refresh token this process already spent (its rotated successor could
	// not be saved before it failed).
	nothingNewStored = Guard{"same credential or spent token", func(in Input) bool {
		rec := eventRecord(in.Event)
		return !rec.IsZero() && (rec.SameCredential(in.Ext.Record) || holdsSpent(rec, in.Ext))
	}}

	nothingStored = Guard{"nothing stored", func(in Input) bool {
		return eventRecord(in.Event).IsZero()
	}}

	restrictedFromEnv = Guard{"restricted, from environment", func(in Input) bool {
		e, ok := in.Event.(states.Loaded)
		return ok && e.FromEnv && in.Policy.Violation(e.Record) != ""
	}}

	restricted = Guard{"restricted", func(in Input) bool {
		return in.Policy.Violation(eventRecord(in.Event)) != ""
	}}

	isAPIKey = Guard{"api key", func(in Input) bool {
		return eventRecord(in.Event).Mode == states.ModeAPIKey
	}}

	tokensStale = Guard{"tokens stale", func(in Input) bool {
		return in.Policy.Stale(eventRecord(in.Event), in.Event.Time())
	}}

	storedManagedStale = Guard{"stored tokens stale", func(in Input) bool {
		rec := eventRecord(in.Event)
		return rec.Mode == states.ModeManaged && in.Policy.Stale(rec, in.Event.Time())
	}}

	// storeUnchanged: nobody rotated the tokens since this process last read
	// or wrote the store, so the refresh token in memory is the one to
	// redeem. Either the version is the one we know, or the store holds our
	// refresh token (someone re-saved the same credential), or it holds the
	// one we spent to get ours (our save of the successor failed).
	storeUnchanged = Guard{"store unchanged", func(in Input) bool {
		e, ok := in.Event.(states.StoreReread)
		if !ok {
			return false
		}
		if e.Version == in.Ext.Version || holdsSpent(e.Record, in.Ext) {
			return true
		}
		return e.Record.Mode == in.Ext.Record.Mode &&
			e.Record.Tokens.RefreshToken.Equal(in.Ext.Record.Tokens.RefreshToken)
	}}

	notCurrent = Guard{"not the current generation", func(in Input) bool {
		return eventGeneration(in.Event) != in.Ext.Generation
	}}

	// refusedAgain: the refused tokens are newer than those whose 401
	// started the last recovery, and that was less than the cooldown ago.
	refusedAgain = Guard{"refused again soon after a recovery", func(in Input) bool {
		x := in.Ext
		return !x.RecoveryAt.IsZero() && x.Generation > x.RecoveryFrom &&
			in.Policy.WithinRecoveryCooldown(x.RecoveryAt, in.Event.Time())
	}}

	hostManaged = Guard{"host-managed", func(in Input) bool {
		return in.Ext.Record.Mode == states.ModeExternal
	}}

	hostManagedExpired = Guard{"host-managed, expired", func(in Input) bool {
		return in.Ext.Record.Mode == states.ModeExternal && Expired(in.Ext.Record, in.Event.Time())
	}}

	managedStale = Guard{"managed, stale", func(in Input) bool {
		return in.Ext.Record.Mode == states.ModeManaged && in.Policy.Stale(in.Ext.Record, in.Event.Time())
	}}

	nowStale = Guard{"stale", func(in Input) bool {
		return in.Policy.Stale(in.Ext.Record, in.Event.Time())
	}}

	currentAndStale = Guard{"current generation, stale", func(in Input) bool {
		return eventGeneration(in.Event) == in.Ext.Generation &&
			in.Policy.Stale(in.Ext.Record, in.Event.Time())
	}}

	backingOff = Guard{"backing off", func(in Input) bool {
		return in.Event.Time().Before(in.Ext.RetryAt)
	}}

	rereadUnreadable = Guard{"unreadable", func(in Input) bool {
		e, ok := in.Event.(states.RereadFailed)
		return ok && e.Unreadable
	}}

	// workspaceMismatch: the host's tokens are for another workspace than the
	// forced one, or their id token cannot be read to tell.
	workspaceMismatch = Guard{"workspace mismatch", func(in Input) bool {
		e, ok := in.Event.(states.HostRefreshSucceeded)
		if !ok || in.Policy.ForcedWorkspace == "" {
			return false
		}
		return e.Grant.IDTokenErr != nil || in.Policy.WorkspaceMismatch(e.Grant.Claims) != ""
	}}
)
