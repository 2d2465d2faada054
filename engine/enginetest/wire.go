package enginetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// Wire is an http.RoundTripper for one process's requests to a token
// endpoint. It records every redemption (the refresh token sent and the
// tokens that came back), counts how many were in flight at once, remembers
// which refresh tokens this process has seen rotated away, and can hold or
// cut a request on the test's command.
//
// Give it to a manager through engine.Config.HTTPClient:
//
//	wire := enginetest.NewWire(srv.HTTPClient().Transport, srv.Stats)
//	cfg.HTTPClient = &http.Client{Transport: wire}
type Wire struct {
	base  http.RoundTripper
	stats func() ServerStats

	mu        sync.Mutex
	exchanges []Exchange
	inFlight  int
	maxFlight int
	retired   map[string]bool // refresh tokens this process saw replaced
	replays   []string        // retired refresh tokens sent again
	cut       *cutMode
	gate      chan struct{} // closed to let a held request through
	arrived   chan struct{} // closed when a request reaches the gate
}

// ServerStats is what the Wire needs to know of the token server to cut a
// request at a chosen moment: how many requests reached it and how many
// redemptions it carried out. oauthtest.Server.Stats provides both; adapt it
// with a small function.
type ServerStats struct {
	Requests    int
	Redemptions int
}

// Exchange is one request through the Wire.
type Exchange struct {
	Sent    string // the refresh token presented
	Status  int    // 0 when no response came back
	Err     error  // the transport error, if any
	Cut     bool   // the Wire cut the request (a simulated timeout)
	Access  string // tokens in a successful response, "" when absent
	Refresh string
	IDToken string
}

type cutMode struct{ afterRedemption bool }

// NewWire returns a Wire sending through base (nil: http.DefaultTransport).
// stats may be nil when the test never cuts a request.
func NewWire(base http.RoundTripper, stats func() ServerStats) *Wire {
	if base == nil {
		base = http.DefaultTransport
	}
	return &Wire{base: base, stats: stats, retired: map[string]bool{}}
}

// ErrCut is the transport error of a request the Wire cut: what the client
// sees when an answer never comes.
var ErrCut = cutError{}

type cutError struct{}

func (cutError) Error() string   { return "enginetest: no answer (the test cut the request)" }
func (cutError) Timeout() bool   { return true }
func (cutError) Temporary() bool { return true }

// CutNext makes the next request time out, as if the answer never came:
// the request reaches the server, and the Wire gives up once the server has
// taken it (afterRedemption false) or has redeemed the refresh token
// (afterRedemption true, for a server told to lose its response).
func (w *Wire) CutNext(afterRedemption bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.cut = &cutMode{afterRedemption: afterRedemption}
}

// Hold makes the next request wait at the Wire until Release. The returned
// channel is closed when a request arrives and waits.
func (w *Wire) Hold() (arrived <-chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.gate = make(chan struct{})
	w.arrived = make(chan struct{})
	return w.arrived
}

// Release lets a held request through, or cancels a Hold that caught none.
func (w *Wire) Release() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.gate != nil {
		close(w.gate)
	}
	w.gate, w.arrived = nil, nil
}

// RoundTrip implements http.RoundTripper.
func (w *Wire) RoundTrip(req *http.Request) (*http.Response, error) {
	sent := refreshTokenOf(req)

	w.mu.Lock()
	w.inFlight++
	w.maxFlight = max(w.maxFlight, w.inFlight)
	if sent != "" && w.retired[sent] {
		w.replays = append(w.replays, sent)
	}
	cut := w.cut
	w.cut = nil
	gate, arrived := w.gate, w.arrived
	w.arrived = nil // the gate stays, for Release to open
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.inFlight--
		w.mu.Unlock()
	}()

	if gate != nil && arrived != nil {
		close(arrived)
		select {
		case <-gate:
		case <-req.Context().Done():
		}
	}

	ex := Exchange{Sent: sent}
	var resp *http.Response
	var err error
	if cut != nil {
		err = w.cutRoundTrip(req, cut)
		ex.Cut = true
	} else {
		resp, err = w.base.RoundTrip(req)
	}
	ex.Err = err
	if resp != nil {
		ex.Status = resp.StatusCode
		body, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		if rerr == nil && resp.StatusCode/100 == 2 {
			var tok struct {
				Access  string `json:"access_token"`
				Refresh string `json:"refresh_token"`
				ID      string `json:"id_token"`
			}
			if json.Unmarshal(body, &tok) == nil {
				ex.Access, ex.Refresh, ex.IDToken = tok.Access, tok.Refresh, tok.ID
			}
		}
	}

	w.mu.Lock()
	if ex.Refresh != "" && ex.Refresh != sent && sent != "" {
		w.retired[sent] = true
	}
	w.exchanges = append(w.exchanges, ex)
	w.mu.Unlock()
	return resp, err
}

// cutRoundTrip sends req, waits until the server has taken it (or redeemed
// its token), then abandons it and reports a timeout.
func (w *Wire) cutRoundTrip(req *http.Request, cut *cutMode) error {
	var before ServerStats
	if w.stats != nil {
		before = w.stats()
	}
	ctx, cancel := context.WithCancel(req.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := w.base.RoundTrip(req.Clone(ctx))
		if err == nil {
			resp.Body.Close()
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for w.stats != nil && time.Now().Before(deadline) {
		s := w.stats()
		if (cut.afterRedemption && s.Redemptions > before.Redemptions) ||
			(!cut.afterRedemption && s.Requests > before.Requests) {
			break
		}
		select {
		case <-done:
			// The server answered before it could be cut (it refused the
			// token, say): the answer is lost all the same.
			deadline = time.Now()
		case <-time.After(time.Millisecond):
		}
	}
	cancel()
	<-done
	return ErrCut
}

// refreshTokenOf reads the refresh token from a refresh request in either
// encoding, leaving the body readable.
func refreshTokenOf(req *http.Request) string {
	if req.Body == nil {
		return ""
	}
	body, err := io.ReadAll(req.Body)
	req.Body.Close()
	req.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil {
		return ""
	}
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	mt, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type"))
	if mt == "application/json" {
		var f struct {
			RefreshToken string `json:"refresh_token"`
		}
		_ = json.Unmarshal(body, &f)
		return f.RefreshToken
	}
	v, err := url.ParseQuery(string(body))
	if err != nil {
		return ""
	}
	return v.Get("refresh_token")
}

// Exchanges returns every request so far, in the order they ended.
func (w *Wire) Exchanges() []Exchange {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Exchange(nil), w.exchanges...)
}

// Count returns how many requests have ended.
func (w *Wire) Count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.exchanges)
}

// MaxInFlight returns the largest number of requests in flight at once.
func (w *Wire) MaxInFlight() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.maxFlight
}

// Replays returns the refresh tokens this process sent again after it had
// seen them rotated away. A correct credential manager never does.
func (w *Wire) Replays() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.replays...)
}

// Retire records that refresh token rt is no longer this process's to
// send, for a rotation the Wire did not see (another route, a test double).
func (w *Wire) Retire(rt string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.retired[rt] = true
}

// Forget clears what the Wire knows of rotations, as when the process it
// stands for exits and a new one starts: the new process cannot know which
// refresh tokens the old one saw replaced if it could not save them.
func (w *Wire) Forget() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.retired = map[string]bool{}
}

// IsCut reports whether err is the error of a request the Wire cut.
func IsCut(err error) bool { return errors.Is(err, ErrCut) }
