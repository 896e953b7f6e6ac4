// Package livetest hands Go tests the live services that the repository's tests/test_go_client.py starts
// and names in environment variables. Without them a live test is skipped, except under CI=true, where it
// fails: CI must run it.
package livetest

import (
	"os"
	"strings"
	"testing"
)

// Backends are the service's backends that every live test runs against.
var Backends = []string{"sqlite", "dynamodb"}

// URL is the base URL of the service called name in LIVE_STATESTORE_URLS
// ("sqlite=http://127.0.0.1:8080,dynamodb=...").
func URL(t testing.TB, name string) string {
	t.Helper()
	for entry := range strings.SplitSeq(Env(t, "LIVE_STATESTORE_URLS"), ",") {
		if key, url, _ := strings.Cut(entry, "="); key == name {
			return url
		}
	}
	t.Fatalf("LIVE_STATESTORE_URLS names no %q service", name)
	return ""
}

// Env is the value of a variable that the live tests need.
func Env(t testing.TB, name string) string {
	t.Helper()
	value := os.Getenv(name)
	if value != "" {
		return value
	}
	const why = " is unset: the live tests run from `pytest tests/test_go_client.py`, which starts the services"
	if os.Getenv("CI") == "true" {
		t.Fatal(name + why)
	}
	t.Skip(name + why)
	return ""
}
