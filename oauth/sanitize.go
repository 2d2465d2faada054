package oauth

import (
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// DetailLimit is the most bytes of provider text that Sanitize keeps. An
// error is read by a person, often in a one-line log field; a few sentences
// say everything a token endpoint has to say.
const DetailLimit = 200

// scanLimit bounds how much of a body the sanitiser looks at. The rest could
// only ever be cut away, and scanning a capped 1 MiB body with several
// expressions on every failure is wasted work.
const scanLimit = 4 << 10

// redactedMark replaces anything removed by Sanitize.
const redactedMark = "[REDACTED]"

var (
	// Values of fields whose name says they hold a credential, in JSON
	// ("refresh_token": "…") and in form or query encoding (access_token=…).
	// A JSON string cut short by truncation has no closing quote, hence the
	// alternative end of input.
	secretJSONField = regexp.MustCompile(
		`(?i)("[^"]*(?:token|key|secret|password|assertion|authorization)[^"]*"\s*:\s*)"[^"]*(?:"|$)`)
	secretFormField = regexp.MustCompile(
		`(?i)\b(\w*(?:token|key|secret|password|assertion)\w*=)[^&\s"']+`)

	// Credentials in an Authorization header echoed back by a proxy.
	authScheme = regexp.MustCompile(`(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+`)

	// JWT-shaped strings: dot-separated base64url segments where the first
	// starts like an encoded JSON object ("{\"" is "eyJ" in base64), or any
	// two long segments joined by a dot.
	jwtLike = regexp.MustCompile(`eyJ[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*)+` +
		`|[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}(?:\.[A-Za-z0-9_-]*)*`)

	// Runs of base64, base64url or hex characters. Whether a run is opaque
	// enough to be a token is decided by tokenLike, which RE2 cannot express.
	opaqueRun = regexp.MustCompile(`[A-Za-z0-9+/_=-]{24,}`)
)

// Sanitize turns text that came from a provider (a response body, an error
// description) into something safe to put in an error message:
//
//   - every occurrence of a known secret is replaced, and so is anything
//     token-like: JWT-shaped strings, long opaque base64 or hex runs, the
//     values of fields named like credentials, Bearer and Basic credentials;
//   - invalid UTF-8 becomes U+FFFD, control characters and runs of white
//     space become single spaces, so the result is one printable line;
//   - the result is cut to at most DetailLimit bytes on a rune boundary.
//
// Secrets are the exact strings the caller knows must never appear, such as
// the refresh token that was sent and the tokens parsed from the response.
// Over-redaction is accepted: an error that names less is a small loss, a
// token in a log is not.
func Sanitize(text string, secrets ...string) string {
	text, cut := clip(text, scanLimit)
	text = strings.ToValidUTF8(text, "\uFFFD")

	// Known secrets go first, while they are still whole: the patterns
	// below might otherwise redact only part of one.
	for _, s := range secrets {
		if s != "" {
			text = strings.ReplaceAll(text, s, redactedMark)
		}
	}

	text = secretJSONField.ReplaceAllString(text, "${1}\""+redactedMark+"\"")
	text = secretFormField.ReplaceAllString(text, "${1}"+redactedMark)
	text = authScheme.ReplaceAllString(text, "${1} "+redactedMark)
	text = jwtLike.ReplaceAllString(text, redactedMark)
	text = opaqueRun.ReplaceAllStringFunc(text, func(run string) string {
		if tokenLike(run) {
			return redactedMark
		}
		return run
	})
	if cut {
		// The scan limit may have split a token; what is left of it is a
		// prefix that the patterns above can be too short to recognise.
		text = strings.TrimRightFunc(text, isTokenChar) + " …"
	}

	text = oneLine(text)
	out, cut := clip(text, DetailLimit)
	if cut {
		out, _ = clip(out, DetailLimit-len("…"))
		out += "…"
	}
	return out
}

// tokenLike reports whether a run of base64 or hex characters looks like a
// generated credential rather than a word. Words, error codes and snake_case
// identifiers rarely carry digits; generated tokens of this length nearly
// always do, and very long runs are suspect whatever they hold.
func tokenLike(run string) bool {
	if len(run) >= 40 {
		return true
	}
	return strings.ContainsAny(run, "0123456789")
}

func isTokenChar(r rune) bool {
	return r < utf8.RuneSelf && (r == '+' || r == '/' || r == '_' || r == '=' || r == '-' ||
		r == '.' || '0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z')
}

// oneLine replaces control characters and runs of white space with a single
// space and trims the ends.
func oneLine(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			space = true
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(r)
	}
	return b.String()
}

// clip returns at most n bytes of s, cut on a rune boundary, and whether
// anything was cut.
func clip(s string, n int) (string, bool) {
	if len(s) <= n {
		return s, false
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n], true
}
