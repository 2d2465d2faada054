package storage

import (
	"errors"
	"time"
)

// parseTimestamp reads last_refresh: an RFC 3339 time with any offset,
// returned in UTC. An empty string is an error, as it is for Codex (the
// whole record then fails to load).
func parseTimestamp(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, errors.New("is an empty string (want an RFC 3339 time)")
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		// time's message quotes the input; this one does not.
		return time.Time{}, errors.New("is not an RFC 3339 time")
	}
	t = t.UTC()
	if err := checkYear(t); err != nil {
		return time.Time{}, err
	}
	return t, nil
}

// formatTimestamp writes t as Codex writes last_refresh: UTC, a trailing Z,
// and sub-second digits — 3, 6 or 9 of them, the fewest that hold t exactly,
// so that a time read from a file is written back unchanged.
func formatTimestamp(t time.Time) (string, error) {
	t = t.UTC()
	if err := checkYear(t); err != nil {
		return "", err
	}
	layout := "2006-01-02T15:04:05.000000000Z"
	switch ns := t.Nanosecond(); {
	case ns%int(time.Millisecond) == 0:
		layout = "2006-01-02T15:04:05.000Z"
	case ns%int(time.Microsecond) == 0:
		layout = "2006-01-02T15:04:05.000000Z"
	}
	return t.Format(layout), nil
}

// checkYear refuses times RFC 3339 cannot write (it has four year digits).
func checkYear(t time.Time) error {
	if y := t.Year(); y < 0 || y > 9999 {
		return errors.New("is outside the years 0000 to 9999")
	}
	return nil
}
