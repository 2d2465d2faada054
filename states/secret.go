package states

import (
	"fmt"
	"log/slog"
)

// Redacted is what a non-empty [Secret] prints as.
const Redacted = "[REDACTED]"

// Secret holds an API key or a token. It redacts itself wherever a value is
// turned into text for people: fmt with any verb, encoding/json,
// encoding.TextMarshaler and log/slog. Code that must send or store the value
// calls [Secret.Reveal]; that call is the audit point.
//
// The zero value is the empty secret. Secrets compare with [Secret.Equal]
// (which go-cmp also uses).
type Secret struct {
	v string
}

// NewSecret wraps a raw key or token.
func NewSecret(raw string) Secret { return Secret{v: raw} }

// Reveal returns the raw value. Call it only to send the value to its
// rightful receiver (an Authorization header, the token endpoint, the store).
func (s Secret) Reveal() string { return s.v }

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return s.v == "" }

// Equal reports whether two secrets hold the same value.
func (s Secret) Equal(o Secret) bool { return s.v == o.v }

// String returns [Redacted], or "" for the empty secret.
func (s Secret) String() string {
	if s.v == "" {
		return ""
	}
	return Redacted
}

// GoString keeps %#v from printing the value.
func (s Secret) GoString() string { return fmt.Sprintf("states.Secret(%q)", s.String()) }

// Format prints the redacted form for every verb, including %x and %q, which
// would otherwise bypass String for string-like values.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		fmt.Fprint(f, s.GoString())
		return
	}
	fmt.Fprint(f, s.String())
}

// MarshalJSON encodes the redacted form: JSON built from states values is for
// display. Stores encode their own wire records from Reveal.
func (s Secret) MarshalJSON() ([]byte, error) {
	return []byte(fmt.Sprintf("%q", s.String())), nil
}

// MarshalText encodes the redacted form.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// LogValue makes log/slog print the redacted form.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }
