// Package states holds the vocabulary of the credential state machine: the
// seven control states, the credential record and its id-token claims, the
// extended state the rules read, the events that drive the machine, and the
// reasons a credential can fail for good.
//
// Everything here is plain data. The package never does I/O, never reads a
// clock and never logs; time enters only as a field of an event.
//
// # Secrets
//
// API keys and tokens are held in [Secret], which prints as a redacted
// placeholder through fmt (every verb), encoding/json, encoding.TextMarshaler
// and log/slog. The raw value is reachable only through [Secret.Reveal], so a
// secret cannot reach a log line or an error message by accident.
package states
