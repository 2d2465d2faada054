package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
)

const logoutLong = `Forget the credential and delete it from every store that may hold it:
for --store file the auth.json in the Codex home; for keyring and auto the
keyring entry and any plaintext auth.json; host-managed tokens held in memory.
Each store is reported on its own line. A store that cannot be cleared does
not keep the others from being cleared; the command then exits 1.

Logging out works whatever the state, including a credential that failed or
an auth.json that cannot be read. It does not revoke tokens at the provider.`

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
	failed := 0
	for _, r := range removals {
		switch {
		case r.Err != nil:
			failed++
			a.out("not cleared  %s: %s", r.Backend, oneLine(r.Err.Error()))
		case r.Removed:
			a.out("removed      %s", r.Backend)
		default:
			a.out("was empty    %s", r.Backend)
		}
	}
	switch {
	case failed > 0:
		return badInput("%d of %d stores could not be cleared (listed above)", failed,
			len(removals))
	case err != nil:
		return fmt.Errorf("logout: %w", err)
	}
	a.out("signed out")
	return nil
}
