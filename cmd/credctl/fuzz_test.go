package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// What a person pipes into credctl, or hands it as a trace, is outside
// input: these targets check that none of it can crash a command, and that
// what a login refuses is never echoed back.

// fuzzMarker stands for a secret in the seeds. It appears in no message
// credctl writes, so finding it in one means the input was quoted.
const fuzzMarker = "Zq7Kx9Wp3Mr5"

// FuzzReplay: any bytes either parse into a trace, which then replays to
// the end, or are refused with an error that names a line.
func FuzzReplay(f *testing.F) {
	traces, err := filepath.Glob("testdata/replay/*.jsonl")
	if err != nil || len(traces) == 0 {
		f.Fatalf("no seed traces in testdata/replay (%v)", err)
	}
	for _, p := range traces {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		"",
		"# only a comment\n\n",
		`{"event":"advance","by":"9223372036s"}` + "\n" + `{"event":"token_requested"}`,
		`{"event":"advance","by":"-1h"}`,
		`{"event":"loaded","record":{"mode":"managed","access_expires_in":"-2562047h"}}`,
		`{"event":"refresh_failed","status":429,"retry_after":"1e9h","jitter":-3}`,
		`{"event":"unauthorized","generation":18446744073709551615}`,
		`{"event":"loaded","record":"current"}`,
		`{"event":"nope"}`,
		`[1,2,3]`,
		"{\"event\":\"loaded\"}\n{\"event\":",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, input []byte) {
		entries, err := parseTrace(bytes.NewReader(input))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "line ") {
				t.Fatalf("a trace error that names no line: %q", err)
			}
			var te *traceError
			if !errors.As(err, &te) && !strings.Contains(err.Error(), "cannot read") {
				t.Fatalf("an error of type %T: %v", err, err)
			}
			return
		}
		replay(io.Discard, entries)
	})
}

// FuzzParseAPIKey: a key that is accepted can go into an HTTP header as it
// is, and a refusal never quotes the key.
func FuzzParseAPIKey(f *testing.F) {
	for _, s := range []string{
		"sk-" + fuzzMarker,
		"  sk-proj-" + fuzzMarker + "\n",
		"",
		"\n\t ",
		`"sk-` + fuzzMarker + `"`,
		`{"OPENAI_API_KEY":"sk-` + fuzzMarker + `"}`,
		"sk-" + fuzzMarker + " trailing",
		"sk-\u2019" + fuzzMarker,
		"sk-" + fuzzMarker + "\x00",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, input []byte) {
		key, err := parseAPIKey(input)
		if err != nil {
			if strings.Contains(err.Error(), fuzzMarker) {
				t.Fatalf("the refusal quotes the key: %q", err)
			}
			return
		}
		if key == "" || key != strings.TrimSpace(string(input)) {
			t.Fatalf("accepted %q from %q", key, input)
		}
		for i := 0; i < len(key); i++ {
			if key[i] <= ' ' || key[i] > '~' {
				t.Fatalf("accepted a key with byte %#x at %d, which no header can carry", key[i], i)
			}
		}
	})
}

// FuzzParseTokens: the tokens JSON is accepted only with all three tokens,
// and a refusal never quotes any of it.
func FuzzParseTokens(f *testing.F) {
	jwt := "eyJhbGciOiJub25lIn0.eyJlbWFpbCI6ImFAYi5jIn0." + fuzzMarker
	for _, s := range []string{
		`{"id_token":"` + jwt + `","access_token":"at-` + fuzzMarker + `","refresh_token":"rt-` + fuzzMarker + `"}`,
		`{"id_token":"` + fuzzMarker + `","access_token":"at","refresh_token":"rt"}`,
		`{"id_token":"` + jwt + `","access_token":"","refresh_token":7}`,
		`{"tokens":{"id_token":"` + jwt + `"}}`,
		`{"id_token":"` + jwt + `",`,
		`["` + fuzzMarker + `"]`,
		`null`,
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, input []byte) {
		got, err := parseTokens(input)
		if err != nil {
			if strings.Contains(err.Error(), fuzzMarker) {
				t.Fatalf("the refusal quotes the input: %q", err)
			}
			return
		}
		if got.IDToken == "" || got.AccessToken == "" || got.RefreshToken == "" {
			t.Fatalf("accepted tokens with one missing from %q", input)
		}
	})
}
