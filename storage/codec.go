package storage

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/credfsm/credfsm/oauth"
	"github.com/credfsm/credfsm/states"
)

// Member names of a Codex auth.json record. They are file facts, spelled
// exactly (and matched case-sensitively) as Codex writes them.
const (
	fieldAuthMode     = "auth_mode"
	fieldAPIKey       = "OPENAI_API_KEY"
	fieldTokens       = "tokens"
	fieldLastRefresh  = "last_refresh"
	fieldIDToken      = "id_token"
	fieldAccessToken  = "access_token"
	fieldRefreshToken = "refresh_token"
	fieldAccountID    = "account_id"
)

// maxRecordSize bounds what is read as a record. A real one holds three
// JWTs and is a few kilobytes; anything near this size is not a record, and
// reading it whole would only cost memory.
const maxRecordSize = 1 << 20

// tooBigError is the problem of a record of size bytes, more than
// maxRecordSize. size must be what is stored, not what was read of it.
func tooBigError(size int64) error {
	return fmt.Errorf("the record is %d bytes, larger than %d MiB, the most a record can be",
		size, maxRecordSize>>20)
}

// document is a parsed record together with the members credfsm does not
// know. Those are kept so that a save does not drop what another program
// (or a newer Codex) wrote next to the credential.
type document struct {
	rec         states.Record
	extra       []member // unknown top-level members, in file order
	tokensExtra []member // unknown members of "tokens", in file order
}

// parseDocument decodes an auth.json record and builds the states.Record it
// holds: mode resolution as Codex does it (auth_mode when present, else
// "apikey" when OPENAI_API_KEY is not null, else "chatgpt"), claims from the
// id token, expiry from the access token.
//
// A record Codex could not load is an error here too, and so are the shapes
// Codex loads but cannot use: an API-key record without a key, an OAuth
// record without tokens, and a record with neither a key nor tokens ("{}"
// among them), which Codex takes for a ChatGPT login without token data.
// Errors never contain any of the input, and name a mode only when the
// record sets auth_mode.
func parseDocument(data []byte) (document, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return document{}, errors.New("the record is empty")
	}
	if len(data) > maxRecordSize {
		return document{}, tooBigError(int64(len(data)))
	}
	members, err := readObject(data)
	if err != nil {
		return document{}, err
	}

	var doc document
	var authMode, apiKey, lastRefresh *string
	var tokens json.RawMessage
	seen := map[string]bool{}
	for _, m := range members {
		switch m.name {
		case fieldAuthMode, fieldAPIKey, fieldTokens, fieldLastRefresh:
			// serde refuses a repeated field; so does this parser, rather
			// than silently picking one of two credentials.
			if seen[m.name] {
				return document{}, fmt.Errorf("%s appears more than once", m.name)
			}
			seen[m.name] = true
		default:
			doc.extra = append(doc.extra, m)
			continue
		}
		switch m.name {
		case fieldAuthMode:
			authMode, err = decodeString(m.value, fieldAuthMode, true)
		case fieldAPIKey:
			apiKey, err = decodeString(m.value, fieldAPIKey, true)
		case fieldTokens:
			if !isNull(m.value) {
				tokens = m.value
			}
		case fieldLastRefresh:
			lastRefresh, err = decodeString(m.value, fieldLastRefresh, true)
		}
		if err != nil {
			return document{}, err
		}
	}

	rec := &doc.rec
	rec.Mode = states.ModeManaged
	switch {
	case authMode != nil:
		if rec.Mode, err = states.ParseMode(*authMode); err != nil {
			// The value is not repeated: this is a credential file.
			return document{}, fmt.Errorf("%s has an unknown value (want %q, %q or %q)",
				fieldAuthMode, states.WireAPIKey, states.WireManaged, states.WireExternal)
		}
	case apiKey != nil:
		rec.Mode = states.ModeAPIKey
	}
	if apiKey != nil {
		rec.APIKey = states.NewSecret(*apiKey)
	}

	if tokens != nil {
		if doc.tokensExtra, err = parseTokens(tokens, rec); err != nil {
			return document{}, err
		}
	}

	// Without auth_mode the mode above is Codex's inference, which the file
	// does not state; a message then describes what the file holds instead.
	switch {
	case authMode == nil && apiKey == nil && tokens == nil:
		return document{}, fmt.Errorf("the record holds neither an API key (%s) nor tokens "+
			"(%s), and sets no %s", fieldAPIKey, fieldTokens, fieldAuthMode)
	case authMode == nil && rec.Mode == states.ModeAPIKey && rec.APIKey.IsZero():
		return document{}, fmt.Errorf("%s is empty (a record with a key and no %s "+
			"is an API-key record)", fieldAPIKey, fieldAuthMode)
	case rec.Mode == states.ModeAPIKey && apiKey == nil:
		return document{}, fmt.Errorf("auth mode %q needs %s, which is missing or null",
			states.WireAPIKey, fieldAPIKey)
	case rec.Mode == states.ModeAPIKey && rec.APIKey.IsZero():
		return document{}, fmt.Errorf("auth mode %q needs %s, which is empty",
			states.WireAPIKey, fieldAPIKey)
	case rec.Mode != states.ModeAPIKey && tokens == nil:
		return document{}, fmt.Errorf("auth mode %q needs %s, which is missing or null",
			rec.Mode, fieldTokens)
	}

	if lastRefresh != nil {
		if rec.LastRefresh, err = parseTimestamp(*lastRefresh); err != nil {
			return document{}, fmt.Errorf("%s %w", fieldLastRefresh, err)
		}
	}
	return doc, nil
}

// parseTokens reads the "tokens" object into rec and returns its unknown
// members.
func parseTokens(raw json.RawMessage, rec *states.Record) ([]member, error) {
	if kind := valueKind(raw); kind != "an object" {
		return nil, fmt.Errorf("%s must be an object or null, found %s", fieldTokens, kind)
	}
	members, err := readObject(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", fieldTokens, err)
	}

	var extra []member
	values := map[string]*string{}
	for _, m := range members {
		nullable := false
		switch m.name {
		case fieldIDToken, fieldAccessToken, fieldRefreshToken:
		case fieldAccountID:
			nullable = true
		default:
			extra = append(extra, m)
			continue
		}
		if _, dup := values[m.name]; dup {
			return nil, fmt.Errorf("%s.%s appears more than once", fieldTokens, m.name)
		}
		s, err := decodeString(m.value, fieldTokens+"."+m.name, nullable)
		if err != nil {
			return nil, err
		}
		values[m.name] = s
	}

	for _, name := range []string{fieldIDToken, fieldAccessToken, fieldRefreshToken} {
		if values[name] == nil {
			return nil, fmt.Errorf("%s.%s is missing", fieldTokens, name)
		}
	}
	rec.Tokens.IDToken = states.NewSecret(*values[fieldIDToken])
	rec.Tokens.AccessToken = states.NewSecret(*values[fieldAccessToken])
	rec.Tokens.RefreshToken = states.NewSecret(*values[fieldRefreshToken])
	if id := values[fieldAccountID]; id != nil {
		rec.Tokens.AccountID = *id
	}

	// Codex refuses the whole record when the id token is not a JWT; so do
	// we. The oauth package's messages describe the token, never repeat it.
	claims, err := oauth.ParseIDToken(rec.Tokens.IDToken.Reveal())
	if err != nil {
		return nil, &causeError{
			msg:   fmt.Sprintf("%s.%s is not a usable JWT: %v", fieldTokens, fieldIDToken, err),
			cause: err,
		}
	}
	rec.Claims = claims
	// An opaque access token is fine: its expiry is then unknown.
	if exp, ok := oauth.AccessTokenExpiry(rec.Tokens.AccessToken.Reveal()); ok {
		rec.AccessExpiry = exp.UTC()
	}
	return extra, nil
}

// causeError is a parse problem that keeps its cause for errors.Is.
type causeError struct {
	msg   string
	cause error
}

func (e *causeError) Error() string { return e.msg }
func (e *causeError) Unwrap() error { return e.cause }

// encodeDocument writes rec as an auth.json record: compact for the keyring
// and memory, indented by two spaces for the file. The unknown members of
// keep (the record being replaced) are carried over after the known ones.
//
// OPENAI_API_KEY is always written (null when there is none), as Codex
// does; auth_mode is always written, since a Record always knows its mode;
// tokens are written for OAuth records and for an API-key record that
// carries them; last_refresh is left out when unknown.
//
// A record that would not load back is refused with ErrInvalidRecord, so a
// store never holds something it cannot read.
func encodeDocument(rec states.Record, keep document, pretty bool) ([]byte, error) {
	if rec.IsZero() {
		return nil, ErrEmptyRecord
	}
	var b bytes.Buffer
	b.WriteByte('{')
	writeName(&b, fieldAuthMode, true)
	appendJSONString(&b, rec.Mode.String())

	writeName(&b, fieldAPIKey, false)
	writeSecretOrNull(&b, rec.APIKey)

	if rec.Mode != states.ModeAPIKey || rec.Tokens != (states.Tokens{}) {
		writeName(&b, fieldTokens, false)
		b.WriteByte('{')
		writeName(&b, fieldIDToken, true)
		appendJSONString(&b, rec.Tokens.IDToken.Reveal())
		writeName(&b, fieldAccessToken, false)
		appendJSONString(&b, rec.Tokens.AccessToken.Reveal())
		writeName(&b, fieldRefreshToken, false)
		appendJSONString(&b, rec.Tokens.RefreshToken.Reveal())
		writeName(&b, fieldAccountID, false)
		if rec.Tokens.AccountID == "" {
			b.WriteString("null")
		} else {
			appendJSONString(&b, rec.Tokens.AccountID)
		}
		if err := writeMembers(&b, keep.tokensExtra); err != nil {
			return nil, err
		}
		b.WriteByte('}')
	}

	if !rec.LastRefresh.IsZero() {
		ts, err := formatTimestamp(rec.LastRefresh)
		if err != nil {
			return nil, fmt.Errorf("%w: %s %v", ErrInvalidRecord, fieldLastRefresh, err)
		}
		writeName(&b, fieldLastRefresh, false)
		appendJSONString(&b, ts)
	}
	if err := writeMembers(&b, keep.extra); err != nil {
		return nil, err
	}
	b.WriteByte('}')

	// Never store what cannot be loaded again.
	if _, err := parseDocument(b.Bytes()); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidRecord, err)
	}
	if !pretty {
		return b.Bytes(), nil
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b.Bytes(), "", "  "); err != nil {
		return nil, fmt.Errorf("%w: cannot indent the record", ErrInvalidRecord)
	}
	return out.Bytes(), nil
}

// unknownMembers returns the members of a stored record that credfsm does
// not know, for carrying them into the record that replaces it. It asks only
// that data be a JSON object: a record that no longer parses (the one a
// login replaces, say) still gives up what others stored in it.
func unknownMembers(data []byte, found bool) document {
	var doc document
	if !found {
		return doc
	}
	members, err := readObject(data)
	if err != nil {
		return doc
	}
	for _, m := range members {
		switch m.name {
		case fieldAuthMode, fieldAPIKey, fieldLastRefresh:
		case fieldTokens:
			inner, err := readObject(m.value)
			if err != nil {
				continue // null, or not an object: nothing to keep
			}
			for _, t := range inner {
				switch t.name {
				case fieldIDToken, fieldAccessToken, fieldRefreshToken, fieldAccountID:
				default:
					doc.tokensExtra = append(doc.tokensExtra, t)
				}
			}
		default:
			doc.extra = append(doc.extra, m)
		}
	}
	return doc
}

// writeName writes a member name and its colon, after a comma unless first.
func writeName(b *bytes.Buffer, name string, first bool) {
	if !first {
		b.WriteByte(',')
	}
	appendJSONString(b, name)
	b.WriteByte(':')
}

// writeSecretOrNull writes a secret as a JSON string, or null when empty.
func writeSecretOrNull(b *bytes.Buffer, s states.Secret) {
	if s.IsZero() {
		b.WriteString("null")
		return
	}
	appendJSONString(b, s.Reveal())
}

// writeMembers writes members (after a comma each), compacting their values.
func writeMembers(b *bytes.Buffer, members []member) error {
	for _, m := range members {
		writeName(b, m.name, false)
		if err := json.Compact(b, m.value); err != nil {
			return fmt.Errorf("%w: an unknown member kept from the stored record is not valid JSON",
				ErrInvalidRecord)
		}
	}
	return nil
}
