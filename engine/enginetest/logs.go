package enginetest

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"

	"github.com/credfsm/credfsm/states"
)

// Logs captures what a manager logs, as JSON lines at debug level, so that a
// test can search it for secrets. It also reads the manager's "transition"
// records as they are written: they come synchronously from the step that
// made them, so a test sees every transition in order, including the ones a
// manager makes inside New, before anyone could Subscribe.
type Logs struct {
	mu          sync.Mutex
	buf         bytes.Buffer
	transitions []LoggedTransition
	onStep      func(LoggedTransition)
}

// LoggedTransition is a transition as the manager logs it.
type LoggedTransition struct {
	Rule       string
	Event      string
	From, To   string
	Generation uint64
}

// NewLogs returns an empty capture.
func NewLogs() *Logs { return &Logs{} }

// Logger returns a logger writing JSON into the capture at debug level.
func (l *Logs) Logger() *slog.Logger {
	return slog.New(&logHandler{logs: l, inner: slog.NewJSONHandler(&lockedWriter{l},
		&slog.HandlerOptions{Level: slog.LevelDebug})})
}

// OnTransition registers f to be called for each logged transition, on the
// goroutine that made it, while the manager holds its lock: f must be quick
// and must not call the manager.
func (l *Logs) OnTransition(f func(LoggedTransition)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.onStep = f
}

// Text returns everything logged so far.
func (l *Logs) Text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Len returns how many bytes have been logged; Text()[n:] is what came
// after an earlier Len of n.
func (l *Logs) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Len()
}

// Transitions returns the transitions logged so far.
func (l *Logs) Transitions() []LoggedTransition {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]LoggedTransition(nil), l.transitions...)
}

// lockedWriter appends to the capture's buffer under its lock.
type lockedWriter struct{ l *Logs }

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.l.mu.Lock()
	defer w.l.mu.Unlock()
	return w.l.buf.Write(p)
}

type logHandler struct {
	logs  *Logs
	inner slog.Handler
}

func (h *logHandler) Enabled(ctx context.Context, lv slog.Level) bool {
	return h.inner.Enabled(ctx, lv)
}

func (h *logHandler) Handle(ctx context.Context, r slog.Record) error {
	if err := h.inner.Handle(ctx, r); err != nil {
		return err
	}
	if r.Message != "transition" {
		return nil
	}
	var t LoggedTransition
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "rule":
			t.Rule = a.Value.String()
		case "event":
			t.Event = a.Value.String()
		case "from":
			t.From = a.Value.String()
		case "to":
			t.To = a.Value.String()
		case "generation":
			t.Generation = a.Value.Uint64()
		}
		return true
	})
	h.logs.mu.Lock()
	h.logs.transitions = append(h.logs.transitions, t)
	f := h.logs.onStep
	h.logs.mu.Unlock()
	if f != nil {
		f(t)
	}
	return nil
}

func (h *logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &logHandler{logs: h.logs, inner: h.inner.WithAttrs(as)}
}

func (h *logHandler) WithGroup(name string) slog.Handler {
	return &logHandler{logs: h.logs, inner: h.inner.WithGroup(name)}
}

// Secrets is the set of every secret a test has handed to or received from
// the system under test (API keys, access, refresh and id tokens), so that
// logs and error texts can be searched for them.
type Secrets struct {
	mu  sync.Mutex
	set map[string]bool
}

// Add records secrets. For a JWT it also records the signature, the part
// that makes the token usable.
func (s *Secrets) Add(values ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.set == nil {
		s.set = map[string]bool{}
	}
	for _, v := range values {
		if len(v) < 8 {
			continue // too short to search for without false alarms
		}
		s.set[v] = true
		if parts := strings.Split(v, "."); len(parts) == 3 && len(parts[2]) >= 16 {
			s.set[parts[2]] = true
		}
	}
}

// AddRecord records the secrets of a credential.
func (s *Secrets) AddRecord(rec states.Record) {
	s.Add(rec.APIKey.Reveal(), rec.Tokens.AccessToken.Reveal(), rec.Tokens.RefreshToken.Reveal(),
		rec.Tokens.IDToken.Reveal())
}

// Find returns a description of each known secret that occurs in text,
// naming it by its length and where it occurs, never by its value.
func (s *Secrets) Find(text string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for v := range s.set {
		if i := strings.Index(text, v); i >= 0 {
			out = append(out, fmt.Sprintf("a secret of %d bytes at offset %d", len(v), i))
		}
	}
	sort.Strings(out)
	return out
}
