package storage

import (
	"errors"
	"strings"
	"testing"
)

func TestParseMode(t *testing.T) {
	for _, m := range []Mode{ModeFile, ModeKeyring, ModeAuto, ModeEphemeral} {
		got, err := ParseMode(m.String())
		if err != nil || got != m {
			t.Errorf("ParseMode(%q) = %v, %v; want %v", m.String(), got, err, m)
		}
	}
	for _, bad := range []string{"", "File", "keychain", "memory"} {
		_, err := ParseMode(bad)
		if !errors.Is(err, ErrUnknownMode) {
			t.Errorf("ParseMode(%q) err = %v, want ErrUnknownMode", bad, err)
			continue
		}
		for _, name := range []string{"file", "keyring", "auto", "ephemeral"} {
			if !strings.Contains(err.Error(), name) {
				t.Errorf("ParseMode(%q) error %q does not list %q", bad, err, name)
			}
		}
	}
}

func TestMode_textRoundTrip(t *testing.T) {
	var m Mode
	if err := m.UnmarshalText([]byte("auto")); err != nil || m != ModeAuto {
		t.Fatalf("UnmarshalText(auto) = %v, %v", m, err)
	}
	b, err := m.MarshalText()
	if err != nil || string(b) != "auto" {
		t.Errorf("MarshalText = %q, %v", b, err)
	}
	if _, err := Mode(42).MarshalText(); !errors.Is(err, ErrUnknownMode) {
		t.Errorf("MarshalText(42) err = %v, want ErrUnknownMode", err)
	}
}
