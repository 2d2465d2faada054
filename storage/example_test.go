package storage_test

import (
	"context"
	"fmt"
	"log"

	"github.com/credfsm/credfsm/states"
	"github.com/credfsm/credfsm/storage"
)

// A store is opened for a home and a mode. Ephemeral mode keeps the example
// off the disk; the calls are the same in every mode.
func ExampleOpen() {
	ctx := context.Background()
	store, err := storage.Open(storage.Options{Home: "/example/codex", Mode: storage.ModeEphemeral})
	if err != nil {
		log.Fatal(err)
	}

	key := states.Record{Mode: states.ModeAPIKey, APIKey: states.NewSecret("sk-example")}
	if _, err := store.Save(ctx, key, states.NoVersion); err != nil {
		log.Fatal(err)
	}
	rec, _, err := store.Load(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(rec.Mode, rec.APIKey) // secrets print redacted

	removals, err := store.Delete(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(removals), removals[0].Removed)
	// Output:
	// apikey [REDACTED]
	// 1 true
}

// The read-decide-write cycle of a refresh: lock, re-read, save against
// what was read. Another process that saved in between makes Save fail
// with states.ErrConflict instead of being overwritten.
func ExampleStore_Lock() {
	ctx := context.Background()
	store, err := storage.Open(storage.Options{Home: "/example/lock", Mode: storage.ModeEphemeral})
	if err != nil {
		log.Fatal(err)
	}

	unlock, err := store.Lock(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer unlock()

	_, version, err := store.Load(ctx)
	if err != nil {
		log.Fatal(err)
	}
	next := states.Record{Mode: states.ModeAPIKey, APIKey: states.NewSecret("sk-rotated")}
	if _, err := store.Save(ctx, next, version); err != nil {
		log.Fatal(err)
	}
	_, err = store.Save(ctx, next, version) // the version is stale now
	fmt.Println(err != nil)
	// Output:
	// true
}
