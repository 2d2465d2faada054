package storage

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzParseRecord feeds arbitrary bytes to the auth.json parser. The seeds
// are in testdata/fuzz/FuzzParseRecord; plain go test runs them.
//
// Properties:
//   - it never panics;
//   - a record it accepts re-encodes (compact and indented), and the result
//     parses to the same record with the same unknown members, and encodes
//     to the same bytes again;
//   - an error never repeats a string value of the input.
func FuzzParseRecord(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, err := parseDocument(data)
		if err != nil {
			for _, s := range inputStrings(data) {
				if strings.Contains(err.Error(), s) {
					t.Fatalf("error repeats the input string %q: %v", s, err)
				}
			}
			return
		}
		for _, pretty := range []bool{false, true} {
			enc, err := encodeDocument(doc.rec, doc, pretty)
			if err != nil {
				t.Fatalf("accepted record does not encode (pretty %v): %v", pretty, err)
			}
			back, err := parseDocument(enc)
			if err != nil {
				t.Fatalf("encoded record does not parse (pretty %v): %v\n%s", pretty, err, enc)
			}
			if diff := cmp.Diff(doc.rec, back.rec); diff != "" {
				t.Fatalf("record changed through encoding (pretty %v) (-first +second):\n%s",
					pretty, diff)
			}
			if diff := cmp.Diff(compactMembers(doc.extra), compactMembers(back.extra)); diff != "" {
				t.Fatalf("unknown members changed (-first +second):\n%s", diff)
			}
			diff := cmp.Diff(compactMembers(doc.tokensExtra), compactMembers(back.tokensExtra))
			if diff != "" {
				t.Fatalf("unknown token members changed (-first +second):\n%s", diff)
			}
			again, err := encodeDocument(back.rec, back, pretty)
			if err != nil || !bytes.Equal(enc, again) {
				t.Fatalf("encoding is not stable (%v):\n%s\n%s", err, enc, again)
			}
		}
	})
}

// quotedString finds JSON string literals without escapes.
var quotedString = regexp.MustCompile(`"([^"\\\x00-\x1f]{12,})"`)

// inputStrings returns the string literals of data that could be secrets:
// twelve characters or more, and not a plain word or field name, which an
// error may well mention.
func inputStrings(data []byte) []string {
	var out []string
	for _, m := range quotedString.FindAllSubmatch(data, -1) {
		s := string(m[1])
		if strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_. ") == "" {
			continue
		}
		out = append(out, s)
	}
	return out
}

// compactMembers renders members as name=compact value, for comparison.
func compactMembers(ms []member) []string {
	var out []string
	for _, m := range ms {
		var b bytes.Buffer
		if err := json.Compact(&b, m.value); err != nil {
			b.WriteString("!invalid")
		}
		out = append(out, m.name+"="+b.String())
	}
	return out
}
