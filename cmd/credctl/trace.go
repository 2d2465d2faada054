package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/credfsm/credfsm/states"
)

// A trace is a JSON-lines file: one event per line, in the order the
// machine saw them. It is what "credctl replay" reads. The format is
// documented in replayLong; this file parses it.
//
// Parsing is strict, because a trace is written by hand to ask "what would
// the machine do?": a misspelt field silently ignored would answer another
// question. Every problem names its line and field.

// traceAdvance is the one line that is not a machine event: it moves the
// trace's clock.
const traceAdvance = "advance"

// traceFields lists, for each event name, the fields it takes besides
// "event". Every event kind of the machine has an entry (a test checks it).
var traceFields = map[string][]string{
	traceAdvance:             {"by"},
	"loaded":                 {"record", "error", "from_env"},
	"token_requested":        {},
	"refresh_requested":      {},
	"unauthorized":           {"token", "generation"},
	"login_requested":        {"record"},
	"logout_requested":       {},
	"woke":                   {"generation"},
	"store_reread":           {"record", "generation"},
	"reread_failed":          {"unreadable", "error", "generation"},
	"refresh_succeeded":      {"access_expires_in", "rotated", "generation"},
	"refresh_failed":         {"status", "retry_after", "jitter", "error", "generation"},
	"refresh_rejected":       {"reason", "status", "generation"},
	"host_refresh_succeeded": {"access_expires_in", "account_id", "generation"},
	"host_refresh_failed":    {"error", "jitter", "generation"},
	"persisted":              {"generation"},
	"persist_failed":         {"conflict", "error", "generation"},
	"stores_cleared":         {"error", "generation"},
}

// recordFields are the fields of a "record" object.
var recordFields = []string{"mode", "access_expires_in", "last_refresh_ago", "email", "plan",
	"account_id"}

// traceEntry is one parsed line.
type traceEntry struct {
	line  int
	event string           // an event kind's name, or traceAdvance
	kind  states.EventKind // when event is not traceAdvance

	by         time.Duration // advance
	record     *recordSpec   // nil: none given
	current    bool          // record: "current"
	errText    string
	fromEnv    bool
	previous   bool    // unauthorized: "token":"previous"
	generation *uint64 // an explicit generation
	unreadable bool
	expiresIn  *time.Duration
	rotated    bool
	status     int
	retryAfter time.Duration
	jitter     float64
	reason     states.Reason
	conflict   bool
	accountID  string
}

// recordSpec describes a credential without any secret: the replay makes
// up placeholder tokens.
type recordSpec struct {
	mode           states.Mode
	expiresIn      *time.Duration // nil: unknown expiry (an opaque token)
	lastRefreshAgo *time.Duration // nil: see replayer.record
	email, plan    string
	accountID      string
}

// traceError names the line (and field) of a problem in a trace.
type traceError struct {
	line  int
	field string
	msg   string
}

func (e *traceError) Error() string {
	if e.field != "" {
		return fmt.Sprintf("line %d: field %q: %s", e.line, e.field, e.msg)
	}
	return fmt.Sprintf("line %d: %s", e.line, e.msg)
}

// maxTraceLine bounds the buffer of a trace line, newline included. An
// event is a few hundred bytes.
const maxTraceLine = 1 << 20

// parseTrace reads a whole trace. Blank lines and lines whose first
// non-blank character is '#' are skipped. It stops at the first problem.
func parseTrace(r io.Reader) ([]traceEntry, error) {
	var out []traceEntry
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), maxTraceLine)
	n := 1 // the line Scan reads next
	var clock time.Duration
	for ; sc.Scan(); n++ {
		text := sc.Bytes()
		if n == 1 {
			// Some editors begin a UTF-8 file with a byte order mark.
			text = bytes.TrimPrefix(text, []byte("\ufeff"))
		}
		text = bytes.TrimSpace(text)
		if len(text) == 0 || text[0] == '#' {
			continue
		}
		e, err := parseTraceLine(n, text)
		if err != nil {
			return nil, err
		}
		if e.event == traceAdvance {
			if clock += e.by; clock > maxTraceSpan {
				return nil, &traceError{line: n, field: "by", msg: "the trace's clock would " +
					"pass " + maxTraceSpanText + " from its start, the most a trace may cover"}
			}
		}
		out = append(out, e)
	}
	switch err := sc.Err(); {
	case errors.Is(err, bufio.ErrTooLong):
		return nil, &traceError{line: n, msg: fmt.Sprintf("longer than %d bytes, the most a "+
			"trace line may hold; one event takes a line of its own", maxTraceLine-1)}
	case err != nil:
		return nil, fmt.Errorf("line %d: cannot read it: %w", n, err)
	}
	return out, nil
}

func parseTraceLine(n int, text []byte) (traceEntry, error) {
	e := traceEntry{line: n, rotated: true, jitter: 0.5}
	fields, err := decodeObject(text)
	if err != nil {
		return e, &traceError{line: n, msg: err.Error()}
	}
	p := &fieldParser{line: n, fields: fields}

	rawEvent, ok := fields["event"]
	if !ok {
		return e, &traceError{line: n, field: "event", msg: "missing; every line names its event"}
	}
	if err := json.Unmarshal(rawEvent, &e.event); err != nil {
		return e, &traceError{line: n, field: "event", msg: "want a string"}
	}
	allowed, ok := traceFields[e.event]
	if !ok {
		return e, &traceError{line: n, field: "event",
			msg: fmt.Sprintf("unknown event %q (want one of: %s)", e.event, traceEventNames())}
	}
	for _, name := range sortedKeys(fields) {
		if name != "event" && !slices.Contains(allowed, name) {
			takes := "no other field"
			if len(allowed) > 0 {
				takes = strings.Join(allowed, ", ")
			}
			return e, &traceError{line: n, field: name,
				msg: fmt.Sprintf("not a field of %s (it takes: %s)", e.event, takes)}
		}
	}
	if e.event != traceAdvance {
		if e.kind, err = states.ParseEventKind(e.event); err != nil {
			return e, &traceError{line: n, field: "event", msg: err.Error()}
		}
	}

	// Each field means the same in every event that takes it.
	p.duration("by", `"10m"`, &e.by)
	if e.event == traceAdvance {
		if _, ok := fields["by"]; !ok {
			p.fail("by", `missing; say how far the clock moves, e.g. "10m"`)
		} else if e.by <= 0 {
			p.fail("by", `want a positive duration such as "10m"; the clock never goes back`)
		}
	}
	if raw, ok := fields["record"]; ok && p.err == nil {
		if string(raw) == `"current"` {
			e.current = true
		} else {
			e.record = p.record(raw)
		}
	}
	if e.event == "login_requested" && e.record == nil && p.err == nil {
		p.fail("record", "missing, or not a new credential; a login brings one")
	}
	p.str("error", &e.errText)
	p.boolean("from_env", &e.fromEnv)
	if raw, ok := fields["token"]; ok && p.err == nil {
		var which string
		if json.Unmarshal(raw, &which) != nil || (which != "current" && which != "previous") {
			p.fail("token", `want "current" or "previous"`)
		}
		e.previous = which == "previous"
		if _, both := fields["generation"]; both && p.err == nil {
			p.fail("token", `give "token" or "generation", not both`)
		}
	}
	if raw, ok := fields["generation"]; ok && p.err == nil {
		var g uint64
		if json.Unmarshal(raw, &g) != nil {
			p.fail("generation", "want a whole number ≥ 0")
		}
		e.generation = &g
	}
	p.boolean("unreadable", &e.unreadable)
	if _, ok := fields["access_expires_in"]; ok {
		var d time.Duration
		p.duration("access_expires_in", expiresExample, &d)
		e.expiresIn = &d
	}
	p.boolean("rotated", &e.rotated)
	if raw, ok := fields["status"]; ok && p.err == nil {
		if json.Unmarshal(raw, &e.status) != nil || e.status < 0 || e.status > 999 {
			p.fail("status", "want an HTTP status such as 503 (0: no response)")
		}
	}
	p.duration("retry_after", `"30s"`, &e.retryAfter)
	if raw, ok := fields["jitter"]; ok && p.err == nil {
		if json.Unmarshal(raw, &e.jitter) != nil || e.jitter < 0 || e.jitter >= 1 {
			p.fail("jitter", "want a number in [0, 1)")
		}
	}
	if raw, ok := fields["reason"]; ok && p.err == nil {
		var name string
		if json.Unmarshal(raw, &name) != nil {
			p.fail("reason", "want a string, one of: "+reasonNames())
		} else if r, err := states.ParseReason(name); err != nil || r == states.ReasonNone {
			p.fail("reason", "want one of: "+reasonNames())
		} else {
			e.reason = r
		}
	}
	if e.event == "refresh_rejected" && e.reason == states.ReasonNone && p.err == nil {
		p.fail("reason", "missing; say why the provider refused, one of: "+reasonNames())
	}
	p.boolean("conflict", &e.conflict)
	p.str("account_id", &e.accountID)

	if e.event == "loaded" && e.errText != "" && (e.record != nil || e.current) && p.err == nil {
		p.fail("error", `a load either found a record or failed with an "error", not both`)
	}
	return e, p.err
}

// decodeObject decodes one JSON object into its members, refusing anything
// else with a message that never quotes the input.
func decodeObject(text []byte) (map[string]json.RawMessage, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(text, &fields); err != nil || fields == nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return nil, fmt.Errorf("not valid JSON (syntax error at byte %d)", syn.Offset)
		}
		return nil, errors.New("not a JSON object")
	}
	if name, ok := repeatedMember(text); ok {
		return nil, fmt.Errorf("member %s appears twice; which one counts would be a guess",
			quotedName(name))
	}
	return fields, nil
}

// repeatedMember returns the first member name that appears twice in the
// JSON object text, which json.Unmarshal has accepted (keeping the last).
func repeatedMember(text []byte) (string, bool) {
	dec := json.NewDecoder(bytes.NewReader(text))
	if _, err := dec.Token(); err != nil { // the opening brace
		return "", false
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		name, isName := tok.(string)
		if err != nil || !isName {
			return "", false
		}
		if seen[name] {
			return name, true
		}
		seen[name] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return "", false
		}
	}
	return "", false
}

// quotedName quotes a member name for a message when it is a plain word,
// the only kind a trace's fields have; anything else is not repeated.
func quotedName(name string) string {
	if plainWord.MatchString(strings.ReplaceAll(name, "_", "-")) {
		return strconv.Quote(name)
	}
	return "(a name that is not a field of any event)"
}

// fieldParser decodes fields, keeping the first problem.
type fieldParser struct {
	line   int
	fields map[string]json.RawMessage
	prefix string // "record." inside a record
	err    error
}

func (p *fieldParser) fail(field, msg string) {
	if p.err == nil {
		p.err = &traceError{line: p.line, field: p.prefix + field, msg: msg}
	}
}

func (p *fieldParser) str(name string, dst *string) {
	if raw, ok := p.fields[name]; ok && p.err == nil {
		if json.Unmarshal(raw, dst) != nil {
			p.fail(name, "want a string")
		}
	}
}

func (p *fieldParser) boolean(name string, dst *bool) {
	if raw, ok := p.fields[name]; ok && p.err == nil {
		if json.Unmarshal(raw, dst) != nil {
			p.fail(name, "want true or false")
		}
	}
}

// expiresExample is the example of an access_expires_in, which may be
// negative.
const expiresExample = `"1h", or "-1h" for a token that has already expired`

// duration decodes a Go duration string. example is one the field accepts,
// quoted, for the message when the value is not a duration.
func (p *fieldParser) duration(name, example string, dst *time.Duration) {
	raw, ok := p.fields[name]
	if !ok || p.err != nil {
		return
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		p.fail(name, "want a duration string such as "+example)
		return
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		p.fail(name, "want a duration such as "+example)
		return
	}
	if d > maxTraceSpan || d < -maxTraceSpan {
		p.fail(name, "longer than "+maxTraceSpanText+", the most a trace's clock may move "+
			"in all")
		return
	}
	*dst = d
}

// maxTraceSpan bounds every duration in a trace, and the sum of its
// advances, so that every time the replay prints is exact: Go's durations
// end at about 292 years.
const (
	maxTraceSpan     = 100 * 365 * 24 * time.Hour
	maxTraceSpanText = "100 years"
)

func (p *fieldParser) record(raw json.RawMessage) *recordSpec {
	fields, err := decodeObject(raw)
	if err != nil {
		p.fail("record", `want an object such as {"mode":"chatgpt","access_expires_in":"1h"}, `+
			`or "current"`)
		return nil
	}
	sub := &fieldParser{line: p.line, fields: fields, prefix: "record."}
	for _, name := range sortedKeys(fields) {
		if !slices.Contains(recordFields, name) {
			sub.fail(name, "not a field of a record (it takes: "+strings.Join(recordFields, ", ")+")")
		}
	}
	spec := &recordSpec{}
	var mode string
	sub.str("mode", &mode)
	if _, ok := fields["mode"]; !ok {
		sub.fail("mode", `missing; want "chatgpt", "apikey", "chatgptAuthTokens" or "none"`)
	} else if sub.err == nil {
		if mode == "none" {
			spec.mode = states.ModeNone
		} else if spec.mode, err = states.ParseMode(mode); err != nil {
			sub.fail("mode", `want "chatgpt", "apikey", "chatgptAuthTokens" or "none"`)
		}
	}
	if _, ok := fields["access_expires_in"]; ok {
		var d time.Duration
		sub.duration("access_expires_in", expiresExample, &d)
		spec.expiresIn = &d
	}
	if _, ok := fields["last_refresh_ago"]; ok {
		var d time.Duration
		sub.duration("last_refresh_ago", `"2h"`, &d)
		spec.lastRefreshAgo = &d
	}
	sub.str("email", &spec.email)
	sub.str("plan", &spec.plan)
	sub.str("account_id", &spec.accountID)
	if sub.err != nil {
		p.err = sub.err
		return nil
	}
	return spec
}

func traceEventNames() string {
	names := []string{traceAdvance}
	for _, k := range states.EventKinds() {
		names = append(names, k.String())
	}
	return strings.Join(names, ", ")
}

// reasonNames lists the reasons a refusal can carry: every reason that
// parses back from its name, but none.
func reasonNames() string {
	var names []string
	for r := states.ReasonNone + 1; r < 64; r++ {
		if got, err := states.ParseReason(r.String()); err == nil && got == r {
			names = append(names, r.String())
		}
	}
	return strings.Join(names, ", ")
}

func sortedKeys(m map[string]json.RawMessage) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
