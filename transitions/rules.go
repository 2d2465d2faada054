package transitions

import (
	"github.com/credfsm/credfsm/effects"
	"github.com/credfsm/credfsm/states"
)

// Groups of states the rules name often.
var (
	// resting states wait for the next input; no command is in flight.
	resting = []states.State{
		states.LoggedOut, states.APIKey, states.Fresh, states.Stale, states.FailedPermanent,
	}
	withTokens = []states.State{states.Fresh, states.Stale}
	waiting    = []states.State{states.Refreshing, states.ExternalRefresh}
	everyState = states.All()
)

// Short names for the command kinds, so that each rule fits on a few lines.
const (
	persist    = effects.KindPersistRecord
	deleteAll  = effects.KindDeleteStores
	lockReread = effects.KindLockAndReread
	unlock     = effects.KindReleaseLock
	redeem     = effects.KindRedeemRefreshToken
	askHost    = effects.KindAskHost
	wake       = effects.KindWakeAt
	notify     = effects.KindNotifyObservers
)

func cmds(k ...effects.Kind) []effects.Kind { return k }

func only(s ...states.State) []states.State { return s }

// rules is THE table: the only hand-written description of how a credential
// behaves. Order matters: for one state and event, the first rule whose guard
// passes wins, and each group ends with an unguarded fallback.
//
// Login, logout and reload are permitted only in resting states. While a
// refresh is in flight the manager holds them until it settles, so that a
// store lock is never abandoned half-way.
var rules = []Rule{
	// Loading the store (at start-up or on reload). An unreadable store is a
	// permanent failure, never a silent logout. Tokens that could not be
	// saved are the only live ones while the store holds nothing newer: they
	// are kept, and the save is tried again. A failed credential stays failed
	// while the store holds the same credential or the refresh token spent
	// to get it.
	//
	// TODO: load_unreadable from failed_permanent forgets the credential
	// that failed, so if the store then holds it again (a writer that
	// truncates and rewrites the same content) it loads as new and its dead
	// refresh token is redeemed once more. Keeping the failed credential's
	// identity across the unreadable load needs a field of its own in the
	// extended state, and the model to match; credctl avoids reloading an
	// unreadable store after a refusal meanwhile.
	{ID: "load_unreadable", From: resting, On: states.KindLoaded, Guard: unreadable,
		To: states.FailedPermanent, Update: failUnreadableLoad},
	{ID: "load_keep_unsaved", From: withTokens, On: states.KindLoaded, Guard: unsavedStoreStale,
		To: Stay, Update: noteLoadedVersion, Commands: cmds(persist)},
	{ID: "load_same_while_failed", From: only(states.FailedPermanent), On: states.KindLoaded,
		Guard: nothingNewStored, To: Stay},
	{ID: "load_nothing", From: resting, On: states.KindLoaded, Guard: nothingStored,
		To: states.LoggedOut, Update: adoptLoaded},
	// Only an API key comes from the environment, and it can only break a
	// forced ChatGPT method, under which no API key is ever in use: so the
	// rule cannot apply in api_key.
	{ID: "load_restricted_env", From: only(states.LoggedOut, states.Fresh, states.Stale,
		states.FailedPermanent), On: states.KindLoaded, Guard: restrictedFromEnv,
		To: states.FailedPermanent, Update: failRestricted},
	{ID: "load_restricted", From: resting, On: states.KindLoaded, Guard: restricted,
		To: states.FailedPermanent, Update: failRestricted, Commands: cmds(deleteAll)},
	{ID: "load_api_key", From: resting, On: states.KindLoaded, Guard: isAPIKey,
		To: states.APIKey, Update: adoptLoaded},
	{ID: "load_stale", From: resting, On: states.KindLoaded, Guard: tokensStale,
		To: states.Stale, Update: adoptLoaded},
	{ID: "load_fresh", From: resting, On: states.KindLoaded,
		To: states.Fresh, Update: adoptLoaded, Commands: cmds(wake)},

	// Signing in replaces whatever is stored; signing out clears every store.
	{ID: "login_restricted", From: resting, On: states.KindLoginRequested, Guard: restricted,
		To: states.FailedPermanent, Update: failRestricted},
	{ID: "login_api_key", From: resting, On: states.KindLoginRequested, Guard: isAPIKey,
		To: states.APIKey, Update: login, Commands: cmds(persist)},
	{ID: "login_stale", From: resting, On: states.KindLoginRequested, Guard: tokensStale,
		To: states.Stale, Update: login, Commands: cmds(persist)},
	{ID: "login_fresh", From: resting, On: states.KindLoginRequested,
		To: states.Fresh, Update: login, Commands: cmds(persist, wake)},
	{ID: "logout", From: resting, On: states.KindLogoutRequested,
		To: states.LoggedOut, Update: logout, Commands: cmds(deleteAll)},
	{ID: "stores_cleared", From: only(states.LoggedOut, states.FailedPermanent),
		On: states.KindStoresCleared, To: Stay, Update: cleared},

	// A caller needs a token. Managed tokens are refreshed once stale;
	// host-managed tokens are served until they expire, then the host is
	// asked. During a backoff nothing is started (neither a redemption nor a
	// question to the host) and the old access token is still served.
	{ID: "token_logged_out", From: only(states.LoggedOut), On: states.KindTokenRequested, To: Stay},
	{ID: "token_api_key", From: only(states.APIKey), On: states.KindTokenRequested, To: Stay},
	{ID: "token_failed", From: only(states.FailedPermanent), On: states.KindTokenRequested, To: Stay},
	{ID: "token_wait", From: waiting, On: states.KindTokenRequested, To: Stay},
	{ID: "token_backing_off", From: only(states.Stale), On: states.KindTokenRequested,
		Guard: backingOff, To: Stay},
	{ID: "token_host_expired", From: withTokens, On: states.KindTokenRequested,
		Guard: hostManagedExpired, To: states.ExternalRefresh, Commands: cmds(askHost)},
	{ID: "token_refresh_due", From: only(states.Fresh), On: states.KindTokenRequested,
		Guard: managedStale, To: states.Refreshing, Commands: cmds(lockReread)},
	{ID: "token_turned_stale", From: only(states.Fresh), On: states.KindTokenRequested,
		Guard: nowStale, To: states.Stale},
	{ID: "token_fresh", From: only(states.Fresh), On: states.KindTokenRequested, To: Stay},
	{ID: "token_host_not_expired", From: only(states.Stale), On: states.KindTokenRequested,
		Guard: hostManaged, To: Stay},
	{ID: "token_stale_refresh", From: only(states.Stale), On: states.KindTokenRequested,
		To: states.Refreshing, Commands: cmds(lockReread)},

	// A caller asked for a refresh now, stale or not.
	{ID: "refresh_host", From: withTokens, On: states.KindRefreshRequested, Guard: hostManaged,
		To: states.ExternalRefresh, Commands: cmds(askHost)},
	{ID: "refresh_now", From: withTokens, On: states.KindRefreshRequested,
		To: states.Refreshing, Commands: cmds(lockReread)},
	{ID: "refresh_wait", From: waiting, On: states.KindRefreshRequested, To: Stay},
	{ID: "refresh_impossible", From: only(states.LoggedOut, states.APIKey, states.FailedPermanent),
		On: states.KindRefreshRequested, To: Stay},

	// The API refused a token. Only a 401 for the current generation starts
	// recovery; one for a replaced token just means "retry with the current
	// one". Nor does a 401 for the tokens a recovery has just brought: a new
	// token was refused too, so another would not help. A refused API key
	// is reported, never refreshed.
	{ID: "unauthorized_old_generation", From: only(states.APIKey, states.Fresh, states.Stale),
		On: states.KindUnauthorized, Guard: notCurrent, To: Stay},
	{ID: "unauthorized_again", From: only(states.Fresh, states.Stale), On: states.KindUnauthorized,
		Guard: refusedAgain, To: Stay},
	{ID: "unauthorized_backing_off", From: only(states.Stale), On: states.KindUnauthorized,
		Guard: backingOff, To: Stay},
	{ID: "unauthorized_host", From: withTokens, On: states.KindUnauthorized, Guard: hostManaged,
		To: states.ExternalRefresh, Update: noteRecovery, Commands: cmds(askHost)},
	{ID: "unauthorized_refresh", From: withTokens, On: states.KindUnauthorized,
		To: states.Refreshing, Update: noteRecovery, Commands: cmds(lockReread)},
	{ID: "unauthorized_api_key", From: only(states.APIKey), On: states.KindUnauthorized, To: Stay},
	{ID: "unauthorized_wait", From: waiting, On: states.KindUnauthorized, To: Stay},
	{ID: "unauthorized_no_credential", From: only(states.LoggedOut, states.FailedPermanent),
		On: states.KindUnauthorized, To: Stay},

	// A timer fired. Only the current generation's timer matters.
	{ID: "woke_turned_stale", From: only(states.Fresh), On: states.KindWoke, Guard: currentAndStale,
		To: states.Stale},
	{ID: "woke_ignored", From: everyState, On: states.KindWoke, To: Stay},

	// The store was locked and re-read before redeeming. If another process
	// rotated the tokens, adopt them instead of spending a refresh token that
	// is already dead; if it signed out or switched credentials, follow it
	// and never redeem the old token.
	{ID: "reread_empty", From: only(states.Refreshing), On: states.KindStoreReread,
		Guard: nothingStored, To: states.LoggedOut, Update: adoptStored,
		Commands: cmds(unlock, notify)},
	{ID: "reread_restricted", From: only(states.Refreshing), On: states.KindStoreReread,
		Guard: restricted, To: states.FailedPermanent, Update: failRestricted,
		Commands: cmds(unlock, deleteAll, notify)},
	{ID: "reread_unchanged", From: only(states.Refreshing), On: states.KindStoreReread,
		Guard: storeUnchanged, To: Stay, Update: noteVersion, Commands: cmds(redeem)},
	{ID: "reread_adopt_api_key", From: only(states.Refreshing), On: states.KindStoreReread,
		Guard: isAPIKey, To: states.APIKey, Update: adoptStored, Commands: cmds(unlock, notify)},
	{ID: "reread_adopt_stale", From: only(states.Refreshing), On: states.KindStoreReread,
		Guard: storedManagedStale, To: Stay, Update: adoptStored, Commands: cmds(redeem)},
	{ID: "reread_adopt_fresh", From: only(states.Refreshing), On: states.KindStoreReread,
		To: states.Fresh, Update: adoptStored, Commands: cmds(unlock, notify, wake)},
	{ID: "reread_unreadable", From: only(states.Refreshing), On: states.KindRereadFailed,
		Guard: rereadUnreadable, To: states.FailedPermanent, Update: failUnreadableReread,
		Commands: cmds(unlock, notify)},
	{ID: "reread_failed", From: only(states.Refreshing), On: states.KindRereadFailed,
		To: states.Stale, Update: backoffReread, Commands: cmds(unlock, notify)},

	// The token endpoint answered. New tokens are persisted before anyone is
	// handed the new access token: the move to fresh waits for the save.
	{ID: "refresh_succeeded", From: only(states.Refreshing), On: states.KindRefreshSucceeded,
		To: Stay, Update: applyGrant, Commands: cmds(persist)},
	{ID: "refresh_failed", From: only(states.Refreshing), On: states.KindRefreshFailed,
		To: states.Stale, Update: backoffRefresh, Commands: cmds(unlock, notify)},
	//
	// TODO: a refusal goes straight to failed_permanent, though a program
	// that takes no lock (the Codex CLI) may have spent the token and saved
	// its successor while ours was on its way. Re-reading the store first
	// (still under the lock) would adopt those tokens without a host's
	// Reload; it needs a rule pair for the re-read after a refusal, in the
	// model too. credctl reloads after a refusal meanwhile.
	{ID: "refresh_rejected", From: only(states.Refreshing), On: states.KindRefreshRejected,
		To: states.FailedPermanent, Update: failRejected, Commands: cmds(unlock, notify)},

	// The host answered. Tokens for the wrong workspace are not stored.
	{ID: "host_workspace_mismatch", From: only(states.ExternalRefresh),
		On: states.KindHostRefreshSucceeded, Guard: workspaceMismatch, To: states.Stale,
		Update: backoffMismatch, Commands: cmds(notify)},
	{ID: "host_refresh_succeeded", From: only(states.ExternalRefresh),
		On: states.KindHostRefreshSucceeded, To: Stay, Update: applyHostGrant,
		Commands: cmds(persist)},
	{ID: "host_refresh_failed", From: only(states.ExternalRefresh), On: states.KindHostRefreshFailed,
		To: states.Stale, Update: backoffHost, Commands: cmds(notify)},

	// A save finished. After a refresh this is when the new token is handed
	// out. If the save failed the tokens are still valid and are served from
	// memory; the next refresh saves its result as usual.
	{ID: "persisted_refresh", From: waiting, On: states.KindPersisted, To: states.Fresh,
		Update: saved, Commands: cmds(unlock, notify, wake)},
	{ID: "persisted", From: only(states.APIKey, states.Fresh, states.Stale), On: states.KindPersisted,
		To: Stay, Update: saved},
	{ID: "persist_failed_refresh", From: waiting, On: states.KindPersistFailed, To: states.Fresh,
		Update: unsaved, Commands: cmds(unlock, notify, wake)},
	{ID: "persist_failed", From: only(states.APIKey, states.Fresh, states.Stale),
		On: states.KindPersistFailed, To: Stay, Update: unsaved},
}
