// Package storage keeps one credential — an API key or OAuth tokens — where
// the OpenAI Codex CLI keeps it, in the same format, so that credfsm and
// Codex can share it. Every store satisfies effects.Store.
//
// # Stores
//
// Four backends, named as Codex's cli_auth_credentials_store setting names
// them (see Mode):
//
//   - File: <home>/auth.json, the default.
//   - Keyring: the OS keyring, service "Codex Auth", account
//     "cli|" + the first 16 hex digits of the SHA-256 of the home path
//     (canonical when the directory exists, as given otherwise; see
//     KeyringAccount).
//   - Auto: the keyring, falling back to the file when the keyring fails,
//     refuses the record or does not answer in time.
//   - Ephemeral: this process's memory, keyed like the keyring.
//
// Store, returned by Open, is what the engine uses. It puts the in-memory
// entry in front of the configured backend, in Codex's order: host-managed
// tokens (states.ModeExternal) live in memory only and, while present, are
// what Load returns; everything else goes to the configured backend. Delete
// clears every place the credential may be.
//
// # What it never does
//
//   - It never puts a secret in an error or a log line. Errors about stored
//     content name the field, the JSON type and the byte offset, never a
//     value (LoadError).
//   - It never writes host-managed tokens to disk or keyring through Store.
//   - It never leaves a torn or half-written auth.json, and never an empty
//     one: each save writes a 0600 temporary file in the same directory,
//     syncs it, renames it over auth.json and syncs the directory. When
//     auth.json is a symbolic link, all of that happens to the file it
//     leads to, in that file's directory, and the link stays (see File). The file
//     is 0600 after every save; the directory is created 0700, and a save
//     takes away whatever group and other permissions it has, but never
//     grants one (a home its owner made read-only stays so, and the save
//     fails with an error wrapping fs.ErrPermission).
//   - It never falls back to the plaintext file silently: Auto logs a
//     warning and Info reports InsecureFallback with the reason.
//   - It never waits on the OS keyring for longer than the time box
//     (DefaultKeyringTimeout unless configured).
//   - It never takes the lock on its own (see below), never refreshes a
//     token and never talks to the network.
//   - It never panics on stored content, however malformed.
//
// # The record
//
// The file holds the record as JSON indented by two spaces; the keyring and
// memory hold it compact. Members, spelled exactly so:
//
//	auth_mode       "apikey" | "chatgpt" | "chatgptAuthTokens"; optional on
//	                read; always written, since a record knows its mode
//	OPENAI_API_KEY  string or null; always written, null when absent
//	tokens          {id_token, access_token, refresh_token, account_id}, the
//	                first three strings, account_id a string or null (null
//	                when absent); written for OAuth records, and for an
//	                API-key record that carries tokens
//	last_refresh    RFC 3339 time, written in UTC with Z and sub-second
//	                digits; omitted when unknown; "" is an error
//
// Without auth_mode, the mode is "apikey" when OPENAI_API_KEY is not null
// and "chatgpt" otherwise — so an old record holding both an exchanged key
// and tokens is an API-key record, as it is for Codex. The id token must be
// a JWT (its claims are read with oauth.ParseIDToken, unverified); the
// access token may be opaque. A record Codex could not load does not load
// here either, nor does an API-key record without a key, an OAuth record
// without tokens, or a record with neither (such as {}, which Codex takes
// for a ChatGPT login it cannot use, not for a logout): each is a *LoadError
// wrapping states.ErrUnreadable, which comes back with the version of the
// unreadable content.
//
// Members credfsm does not know, at the top level and inside tokens, are
// carried into the record that replaces them on the next save.
//
// # Versions and compare-and-swap
//
// A version is the SHA-256 of exactly what the backend holds;
// states.NoVersion means nothing is stored. Save(rec, expected) writes only
// if what Load would return now has the expected version
// (states.AnyVersion: always) and otherwise returns a *ConflictError
// wrapping states.ErrConflict, having written nothing. Within a process,
// each save is atomic against every other save and delete of the same home.
//
// # Locking
//
// Across processes, the compare and the write of a save are two steps, and
// only the lock makes them one. Lock takes an exclusive advisory lock on
// <home>/auth.json.lock (created 0600, never removed), waiting until the
// context is done and then failing with an error wrapping
// states.ErrLockTimeout; in ModeEphemeral the lock is in-process. A caller
// that reads, decides and writes — a token refresh — does
//
//	unlock, err := store.Lock(ctx)
//	rec, version, err := store.Load(ctx)   // re-read under the lock
//	// ... decide, redeem ...
//	version, err = store.Save(ctx, next, version)
//	unlock()
//
// Load, Save and Delete never take the lock themselves, so they are safe to
// call while holding it; the lock is not re-entrant, so a second Lock while
// holding it waits like anyone else's and fails when its context is done.
package storage
