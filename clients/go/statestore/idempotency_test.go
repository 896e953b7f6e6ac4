package statestore_test

import (
	"regexp"
	"testing"

	"github.com/durable-state-store/durable-state-store/clients/go/statestore"
)

// The service's rule for the header: a Structured Field string of 1 to 255 visible ASCII characters other
// than `"` and `\` (app/api/idempotency.py).
var keyHeader = regexp.MustCompile(`^"[\x21\x23-\x5b\x5d-\x7e]{1,255}"$`)

func TestNewIdempotencyKey(t *testing.T) {
	tests := []struct {
		name  string
		check func(t *testing.T, keys []string)
	}{
		{"is a header value the service takes", func(t *testing.T, keys []string) {
			for _, key := range keys {
				if !keyHeader.MatchString(key) {
					t.Fatalf("%q is not a Structured Field string the service takes", key)
				}
			}
		}},
		{"is new each time", func(t *testing.T, keys []string) {
			seen := make(map[string]bool, len(keys))
			for _, key := range keys {
				if seen[key] {
					t.Fatalf("%q drawn twice", key)
				}
				seen[key] = true
			}
		}},
		{"carries 128 bits", func(t *testing.T, keys []string) {
			for _, key := range keys {
				if len(key) != len(`""`)+22 {
					t.Fatalf("%q is not 22 base64url characters quoted", key)
				}
			}
		}},
	}
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = statestore.NewIdempotencyKey()
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) { test.check(t, keys) })
	}
}
