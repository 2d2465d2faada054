package oauthtest

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/credfsm/credfsm/oauth"
)

// Fault is a failure the server applies to one request instead of, or on
// top of, its normal answer. Queue faults with [Server.Inject]; each is used
// up by the next request that arrives.
//
// Faults that answer with an error leave the server's tokens as they were:
// the refresh token sent stays redeemable. Only LoseResponse, BadIDToken and
// a Delay that runs to its end redeem it.
type Fault struct {
	kind        faultKind
	status      int
	contentType string
	body        string
	retryAfter  string
	delay       time.Duration
	code        string
}

type faultKind uint8

const (
	faultRespond faultKind = iota
	faultStatus
	faultReject
	faultDelay
	faultHang
	faultLoseResponse
	faultBadIDToken
)

// String names the fault for test failure messages.
func (f Fault) String() string {
	switch f.kind {
	case faultStatus:
		return fmt.Sprintf("status %d", f.status)
	case faultReject:
		return "reject " + f.code
	case faultDelay:
		return fmt.Sprintf("delay %s", f.delay)
	case faultHang:
		return "hang"
	case faultLoseResponse:
		return "lose response"
	case faultBadIDToken:
		return "bad id token"
	}
	return fmt.Sprintf("respond %d %s", f.status, f.contentType)
}

// Status answers with the given status and an error body in the request's
// dialect whose code ("server_error") no client treats as permanent. Use it
// for 5xx, 408, 403 and other statuses; for 429 see RateLimited.
func Status(status int) Fault {
	return Fault{kind: faultStatus, status: status}
}

// RateLimited answers 429 with the given Retry-After header value (seconds
// or an HTTP date; "" sends no header).
func RateLimited(retryAfter string) Fault {
	return Fault{kind: faultStatus, status: http.StatusTooManyRequests, retryAfter: retryAfter}
}

// Reject refuses the refresh token with an error code, as the provider does:
// in the Codex dialect a 401 with {"error":{"code":code,...}}, in the
// RFC 6749 dialect a 400 with {"error":code} (401 for invalid_client, with a
// WWW-Authenticate header). The token itself is left as it was.
func Reject(code string) Fault {
	return Fault{kind: faultReject, code: code}
}

// Delay waits d of real time, then serves the request normally (redeeming
// the token). If the client gives up first, nothing is redeemed.
func Delay(d time.Duration) Fault {
	return Fault{kind: faultDelay, delay: d}
}

// Hang never answers: the request ends only when the client gives up or the
// server is closed. Nothing is redeemed.
func Hang() Fault {
	return Fault{kind: faultHang}
}

// LoseResponse redeems the refresh token (rotating it, as a real provider
// does) and then never answers, as when a response is lost on the way back.
// The client's only way to learn the new tokens is gone, and the token it
// sent is now used: the case a credential manager must survive without
// replaying the old token.
func LoseResponse() Fault {
	return Fault{kind: faultLoseResponse}
}

// BadIDToken serves the request normally, redeeming the token, but replaces
// the id token in the response with one that does not parse.
func BadIDToken() Fault {
	return Fault{kind: faultBadIDToken}
}

// MalformedJSON answers 200 with a JSON body cut short.
func MalformedJSON() Fault {
	return Respond(http.StatusOK, "application/json", `{"access_token":"cut-short","refresh_token":`)
}

// Oversized answers 200 with a well-formed JSON body larger than
// oauth.MaxBodySize, whose access token comes after the limit.
func Oversized() Fault {
	return Fault{kind: faultRespond, status: http.StatusOK, contentType: "application/json",
		body: oversizedBody()}
}

// HTMLPage answers with status and an HTML page, as a proxy or captive
// portal does.
func HTMLPage(status int) Fault {
	return Respond(status, "text/html; charset=utf-8",
		"<!DOCTYPE html>\n<html><head><title>Bad Gateway</title></head>\n"+
			"<body><h1>502 Bad Gateway</h1><p>The upstream server did not answer.</p></body></html>\n")
}

// Respond answers with exactly the given status, content type and body.
func Respond(status int, contentType, body string) Fault {
	return Fault{kind: faultRespond, status: status, contentType: contentType, body: body}
}

// oversizedBody is built once, on first use: a JSON object a little larger
// than the client reads.
var oversizedBody = sync.OnceValue(func() string {
	return `{"padding":"` + strings.Repeat("x", oauth.MaxBodySize) +
		`","access_token":"after-the-limit"}`
})
