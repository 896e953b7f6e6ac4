package statestore_test

import (
	"encoding/json"
	"math"
	"strconv"
	"testing"

	"github.com/durable-state-store/durable-state-store/clients/go/statestore"
)

func TestIntegersReadNumbersAndStringsExactly(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		version   statestore.Uint64
		timestamp statestore.Int64
	}{
		{"numbers", `{"version_number": 3, "timestamp": 1764115200000}`, 3, 1764115200000},
		{"strings", `{"version_number": "3", "timestamp": "1764115200000"}`, 3, 1764115200000},
		{"uint64 max", `{"version_number": "18446744073709551615", "timestamp": "0"}`, math.MaxUint64, 0},
		{"uint64 max as number", `{"version_number": 18446744073709551615, "timestamp": 0}`, math.MaxUint64, 0},
		{"zero time.Time in nanoseconds", `{"version_number": "0", "timestamp": "-6795364578871345152"}`, 0, -6795364578871345152},
		{"int64 min", `{"version_number": "1", "timestamp": "-9223372036854775808"}`, 1, math.MinInt64},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			var state statestore.State
			if err := json.Unmarshal([]byte(test.body), &state); err != nil {
				t.Fatal(err)
			}
			if state.VersionNumber != test.version || state.Timestamp != test.timestamp {
				t.Fatalf("read version %d, timestamp %d; want %d, %d",
					state.VersionNumber, state.Timestamp, test.version, test.timestamp)
			}
		})
	}
}

func TestIntegersRefuseWhatIsNotAnInteger(t *testing.T) {
	for _, body := range []string{
		`{"version_number": "18446744073709551616"}`,
		`{"version_number": -1}`,
		`{"version_number": "3.0"}`,
		`{"version_number": "three"}`,
		`{"timestamp": "9223372036854775808"}`,
	} {
		var state statestore.State
		if err := json.Unmarshal([]byte(body), &state); err == nil {
			t.Errorf("%s was read as version %d, timestamp %d", body, state.VersionNumber, state.Timestamp)
		}
	}
}

func TestIntegersWriteJSONNumbers(t *testing.T) {
	timestamp := statestore.Int64(math.MinInt64)
	body, err := json.Marshal(statestore.PutStateRequest{
		Manifest: "google.protobuf.Any", VersionNumber: math.MaxUint64, Timestamp: &timestamp,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"manifest":"google.protobuf.Any","timestamp":-9223372036854775808,"version_number":18446744073709551615}`
	if string(body) != want {
		t.Fatalf("wrote %s, want %s", body, want)
	}
}

// The document types the listing's shard filter as a string of decimal digits; this client keeps it a
// uint64 (overlay.yaml) and must write every one exactly.
func TestAShardFilterIsWrittenInDecimalDigitsExactly(t *testing.T) {
	for _, shard := range []uint64{0, 5, 1<<53 + 1, math.MaxUint64} {
		request, err := statestore.NewListStatesRequest("http://service", &statestore.ListStatesParams{Shard: &shard})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := request.URL.Query().Get("shard"), strconv.FormatUint(shard, 10); got != want {
			t.Fatalf("shard %d is written as %q; want %q", shard, got, want)
		}
	}
}
