package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/credfsm/credfsm/states"
	"github.com/credfsm/credfsm/storage"
)

const logoutLong = `Forget the credential and delete it from every store that may hold it:
for --store file the auth.json in the Codex home; for keyring and auto the
keyring entry and any plaintext auth.json; host-managed tokens held in memory.
Each store is reported on its own line (host-managed tokens in memory only
when there were some). A store that cannot be cleared does not keep the
others from being cleared; the command then exits 1.

When auth.json is a symbolic link, the link is removed, as Codex does, and
the file it led to is left in place; a note names that file, which may
still hold the credential.

Logging out works whatever the state, including a credential that failed or
an auth.json that cannot be read. It waits for the store's lock for half of
--timeout (at most 30s), then clears the stores without it: a refresh
another process has under way then finds the store empty when it saves,
and does not bring the credential back. It does not revoke tokens at the
provider.`

func (a *app) logoutCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "logout",
		Short:   "Delete the credential from every store, reporting each one",
		Long:    logoutLong,
		Example: "  credctl logout\n  credctl --store auto logout",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withSession(cmd, a.writeLockWait(), a.logout)
		},
	}
}

// logout clears every store and reports each one.
func (a *app) logout(ctx context.Context, s *session) error {
	removals, err := s.m.Logout(ctx)
	failed, shown := 0, 0
	var notes []string
	for _, r := range removals {
		what, show := removalName(r, s.mode)
		if !show {
			continue
		}
		shown++
		switch {
		case r.Err != nil:
			failed++
			a.out("not cleared  %s: %s", what, oneLine(r.Err.Error()))
		case r.Removed:
			a.out("removed      %s", what)
		default:
			a.out("was empty    %s", what)
		}
		if target, ok := storage.LeftInPlace(r); ok {
			notes = append(notes, "note: "+target+", the file auth.json linked to, was not "+
				"removed and may still hold the credential; delete it yourself if it is not "+
				"needed")
		}
	}
	for _, n := range notes {
		a.out("%s", n)
	}
	switch {
	case failed > 0:
		return badInput("%d of %d stores could not be cleared (listed above)", failed, shown)
	case err != nil:
		return fmt.Errorf("logout: %w", err)
	}
	a.out("signed out")
	return nil
}

// removalName names the store a Removal is about for people, and says
// whether to list it at all.
//
// Storage names its in-memory entry by the key it is filed under ("memory
// cli|…"), which means nothing to a person. With --store ephemeral that
// entry is the store; otherwise it only ever holds host-managed tokens,
// which a credctl process never has at the start, so it is listed only
// when clearing it did something or failed.
func removalName(r states.Removal, mode storage.Mode) (name string, show bool) {
	if !storage.InMemory(r) {
		return r.Backend, true
	}
	if mode == storage.ModeEphemeral {
		return ephemeralName, true
	}
	return "host-managed tokens in memory", r.Removed || r.Err != nil
}
