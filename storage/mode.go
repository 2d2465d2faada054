package storage

import (
	"fmt"
	"strings"
)

// Mode chooses where a Store keeps the credential. The names are those of
// Codex's cli_auth_credentials_store setting. The zero value is ModeFile,
// Codex's default.
type Mode uint8

const (
	// ModeFile keeps the record in <home>/auth.json.
	ModeFile Mode = iota
	// ModeKeyring keeps the record in the OS keyring and nowhere else; a
	// keyring that does not answer is an error.
	ModeKeyring
	// ModeAuto uses the OS keyring and falls back, visibly, to the file when
	// the keyring is unavailable.
	ModeAuto
	// ModeEphemeral keeps the record in this process's memory only.
	ModeEphemeral

	numModes = iota
)

var modeNames = [numModes]string{
	ModeFile:      "file",
	ModeKeyring:   "keyring",
	ModeAuto:      "auto",
	ModeEphemeral: "ephemeral",
}

// String returns the mode's configuration name.
func (m Mode) String() string {
	if m < numModes {
		return modeNames[m]
	}
	return fmt.Sprintf("mode(%d)", uint8(m))
}

// MarshalText encodes the mode as its name.
func (m Mode) MarshalText() ([]byte, error) {
	if m >= numModes {
		return nil, fmt.Errorf("%w: %d", ErrUnknownMode, uint8(m))
	}
	return []byte(m.String()), nil
}

// UnmarshalText decodes a mode name, as ParseMode does.
func (m *Mode) UnmarshalText(b []byte) error {
	v, err := ParseMode(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// ParseMode maps a configuration name ("file", "keyring", "auto",
// "ephemeral") to a Mode. Names are matched exactly, as Codex does.
func ParseMode(name string) (Mode, error) {
	for i, n := range modeNames {
		if n == name {
			return Mode(i), nil
		}
	}
	return 0, fmt.Errorf("%w %q (valid modes: %s)", ErrUnknownMode, name,
		strings.Join(modeNames[:], ", "))
}
