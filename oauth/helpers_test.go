package oauth

import (
	"encoding/base64"
	"encoding/json"
	"testing"
)

// makeJWT builds an unsigned JWT whose payload is the JSON encoding of
// payload. The signature segment is a placeholder: credfsm never checks it.
func makeJWT(t testing.TB, payload any) string {
	t.Helper()
	b, err := json.Marshal(payload)
	if err != nil {
		t.Fatalf("encoding payload: %v", err)
	}
	return jwtFromJSON(string(b))
}

// jwtFromJSON builds an unsigned JWT around a raw JSON payload.
func jwtFromJSON(payload string) string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." +
		enc.EncodeToString([]byte(payload)) + ".c2lnbmF0dXJl"
}

// authClaims returns an id-token payload with OpenAI's auth namespace.
func authClaims(email string, ns map[string]any) map[string]any {
	p := map[string]any{"sub": "user-1"}
	if email != "" {
		p["email"] = email
	}
	if ns != nil {
		p[authNamespace] = ns
	}
	return p
}
