package main

import (
	"errors"
	"testing"

	"github.com/credfsm/credfsm/states"
	"github.com/credfsm/credfsm/storage"
)

// TestRemovalName: the in-memory entry is named in words, never by its
// key, and left out only when it was empty and is not the store itself.
func TestRemovalName(t *testing.T) {
	const hostTokens = "host-managed tokens in memory"
	memory := states.Removal{Backend: "memory cli|0123456789abcdef"}
	held := memory
	held.Removed = true
	failed := memory
	failed.Err = errors.New("boom")
	file := states.Removal{Backend: "file /h/auth.json"}
	for _, tt := range []struct {
		name string
		r    states.Removal
		mode storage.Mode
		want string
		show bool
	}{
		{"empty memory, file store", memory, storage.ModeFile, hostTokens, false},
		{"empty memory, keyring store", memory, storage.ModeKeyring, hostTokens, false},
		{"host tokens removed", held, storage.ModeFile, hostTokens, true},
		{"memory not cleared", failed, storage.ModeAuto, hostTokens, true},
		{"empty ephemeral store", memory, storage.ModeEphemeral, ephemeralName, true},
		{"file", file, storage.ModeFile, "file /h/auth.json", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, show := removalName(tt.r, tt.mode)
			if got != tt.want || show != tt.show {
				t.Errorf("removalName = %q, %v; want %q, %v", got, show, tt.want, tt.show)
			}
		})
	}
}
