package storage

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/credfsm/credfsm/states"
)

func TestEphemeral_roundTripsEveryShapeWithoutTouchingDisk(t *testing.T) {
	for _, f := range fixtures(t) {
		t.Run(f.name, func(t *testing.T) {
			ctx := ctxT(t)
			home := filepath.Join(t.TempDir(), "codex")
			s := NewEphemeral(home)
			v, err := s.Save(ctx, f.want, states.NoVersion)
			if err != nil {
				t.Fatal(err)
			}
			// Another value for the same home sees the same entry.
			got, v2, err := NewEphemeral(home).Load(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(f.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if v2 != v {
				t.Errorf("Load version %s, Save returned %s", v2, v)
			}
			if _, err := os.Stat(home); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the ephemeral store touched %s: %v", home, err)
			}
		})
	}
}

func TestEphemeral_compareAndSwapAndDelete(t *testing.T) {
	ctx := ctxT(t)
	s := NewEphemeral(t.TempDir())
	v1, err := s.Save(ctx, managedRecord(t, "rt_a"), states.NoVersion)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Save(ctx, managedRecord(t, "rt_b"), states.NoVersion)
	if !errors.Is(err, states.ErrConflict) {
		t.Errorf("err = %v, want ErrConflict", err)
	}
	if _, err := s.Save(ctx, managedRecord(t, "rt_b"), v1); err != nil {
		t.Errorf("save with the current version: %v", err)
	}

	got, err := s.Delete(ctx)
	want := []states.Removal{{Backend: s.where(), Removed: true}}
	if diff := cmp.Diff(want, got); diff != "" || err != nil {
		t.Errorf("Delete err %v, (-want +got):\n%s", err, diff)
	}
	rec, v, err := s.Load(ctx)
	if !rec.IsZero() || v != states.NoVersion || err != nil {
		t.Errorf("after Delete, Load = %v, %q, %v", rec.Mode, v, err)
	}
}

func TestEphemeral_lockIsInProcess(t *testing.T) {
	home := filepath.Join(t.TempDir(), "codex")
	unlock, err := NewEphemeral(home).Lock(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := contextWithTimeout(t, 30*time.Millisecond)
	defer cancel()
	if _, err := NewEphemeral(home).Lock(ctx); !errors.Is(err, states.ErrLockTimeout) {
		t.Errorf("second Lock err = %v, want ErrLockTimeout", err)
	}
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
	unlock2, err := NewEphemeral(home).Lock(ctxT(t))
	if err != nil {
		t.Fatalf("Lock after unlock: %v", err)
	}
	_ = unlock2()
	if fileExists(home) {
		t.Errorf("the ephemeral lock touched the disk")
	}
}
