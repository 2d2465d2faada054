package main

import (
	"fmt"
	"strings"
	"time"
)

// clock renders a moment for people: local time, to the second, with the
// zone, so that it can be compared with a wall clock.
func clock(t time.Time) string {
	return t.Local().Format("2006-01-02 15:04:05 MST")
}

// until says how far t is from now: "in 54m12s", "3m0s ago", "now".
func until(t, now time.Time) string {
	d := t.Sub(now).Round(time.Second)
	switch {
	case d > 0:
		return "in " + span(d)
	case d < 0:
		return span(-d) + " ago"
	}
	return "now"
}

// span renders a duration compactly, to the second, with days for long
// ones: "0s", "45s", "55m", "1h", "1h30m", "8d", "2d3h".
func span(d time.Duration) string {
	if d < 0 {
		return "-" + span(-d)
	}
	d = d.Round(time.Second)
	if d == 0 {
		return "0s"
	}
	days := d / (24 * time.Hour)
	d -= days * 24 * time.Hour
	h := d / time.Hour
	d -= h * time.Hour
	m := d / time.Minute
	d -= m * time.Minute
	s := d / time.Second

	var b strings.Builder
	for _, part := range []struct {
		n    time.Duration
		unit string
	}{{days, "d"}, {h, "h"}, {m, "m"}, {s, "s"}} {
		if part.n != 0 {
			fmt.Fprintf(&b, "%d%s", part.n, part.unit)
		}
	}
	return b.String()
}
