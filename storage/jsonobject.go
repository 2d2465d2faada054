package storage

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// member is one name/value pair of a JSON object, the value kept raw.
type member struct {
	name  string
	value json.RawMessage
}

// readObject splits a JSON object into its members, in document order.
// Anything but exactly one object (surrounded by white space at most) is an
// error. Duplicate names are kept; the caller decides what they mean.
//
// Errors describe where the input goes wrong (a byte offset, the JSON type
// found) and never repeat any of it: the input is a credential record. For
// the same reason the json package's own messages, which quote the offending
// character, are not passed on.
func readObject(data []byte) ([]member, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, describeJSONError(err, len(data))
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("want a JSON object, found %s", tokenKind(tok))
	}

	var members []member
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, describeJSONError(err, len(data))
		}
		name, ok := tok.(string)
		if !ok {
			// Unreachable with encoding/json, which reports a syntax
			// error for a non-string key; kept so a change there cannot
			// turn into a panic here.
			return nil, fmt.Errorf("object key at byte %d is not a string", dec.InputOffset())
		}
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return nil, describeJSONError(err, len(data))
		}
		members = append(members, member{name: name, value: value})
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, describeJSONError(err, len(data))
	}

	end := dec.InputOffset()
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("unexpected data after the JSON object (at byte %d)", end)
	}
	return members, nil
}

// describeJSONError turns a json error into text that cannot echo the input.
func describeJSONError(err error, size int) error {
	var syn *json.SyntaxError
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("truncated JSON (input ends at byte %d)", size)
	case errors.As(err, &syn) && syn.Offset >= int64(size):
		return fmt.Errorf("truncated JSON (input ends at byte %d)", size)
	case errors.As(err, &syn):
		return fmt.Errorf("not valid JSON (syntax error near byte %d)", syn.Offset)
	}
	return errors.New("not valid JSON")
}

// tokenKind names the JSON type of a token from json.Decoder.Token.
func tokenKind(tok json.Token) string {
	switch t := tok.(type) {
	case json.Delim:
		if t == '[' {
			return "an array"
		}
		return "a stray " + t.String()
	case string:
		return "a string"
	case float64, json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return "something else"
}

// valueKind names the JSON type of a raw value by its first byte.
func valueKind(raw json.RawMessage) string {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// isNull reports whether a raw value is JSON null.
func isNull(raw json.RawMessage) bool {
	return string(bytes.TrimSpace(raw)) == "null"
}

// decodeString reads a raw value that must be a string, or null when
// nullable. It returns nil for null.
func decodeString(raw json.RawMessage, field string, nullable bool) (*string, error) {
	if nullable && isNull(raw) {
		return nil, nil
	}
	if valueKind(raw) != "a string" {
		want := "a string"
		if nullable {
			want = "a string or null"
		}
		return nil, fmt.Errorf("%s must be %s, found %s", field, want, valueKind(raw))
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		// The decoder already accepted the value as a string, so this
		// cannot happen; describe it without the value just in case.
		return nil, fmt.Errorf("%s is not a valid JSON string", field)
	}
	return &s, nil
}

// appendJSONString appends s as a JSON string. Unlike json.Marshal it does
// not escape <, > and &: Codex does not either, and the file should read the
// same whichever program wrote it.
func appendJSONString(buf *bytes.Buffer, s string) {
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // encoding a string cannot fail
	buf.Truncate(buf.Len() - 1)
}
