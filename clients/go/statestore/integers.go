package statestore

import (
	"bytes"
	"fmt"
	"strconv"
)

// Uint64 is a 64-bit unsigned integer of the API (version numbers, shards). It reads a JSON number or a
// string of decimal digits, and writes a JSON number, which the service reads exactly in every version.
type Uint64 uint64

// Int64 is a 64-bit signed integer of the API (timestamps), read and written like Uint64.
type Int64 int64

// MarshalJSON writes the value as a JSON number.
func (n Uint64) MarshalJSON() ([]byte, error) {
	return strconv.AppendUint(nil, uint64(n), 10), nil
}

// UnmarshalJSON reads a JSON number or a decimal string; null leaves the value unchanged.
func (n *Uint64) UnmarshalJSON(data []byte) error {
	digits, ok := integerText(data)
	if !ok {
		return nil
	}
	value, err := strconv.ParseUint(digits, 10, 64)
	if err != nil {
		return fmt.Errorf("statestore: %s is not a uint64: %w", data, err)
	}
	*n = Uint64(value)
	return nil
}

// MarshalJSON writes the value as a JSON number.
func (n Int64) MarshalJSON() ([]byte, error) {
	return strconv.AppendInt(nil, int64(n), 10), nil
}

// UnmarshalJSON reads a JSON number or a decimal string; null leaves the value unchanged.
func (n *Int64) UnmarshalJSON(data []byte) error {
	digits, ok := integerText(data)
	if !ok {
		return nil
	}
	value, err := strconv.ParseInt(digits, 10, 64)
	if err != nil {
		return fmt.Errorf("statestore: %s is not an int64: %w", data, err)
	}
	*n = Int64(value)
	return nil
}

// integerText is the text of a JSON number or string; false for null.
func integerText(data []byte) (string, bool) {
	if bytes.Equal(data, []byte("null")) {
		return "", false
	}
	if len(data) >= 2 && data[0] == '"' && data[len(data)-1] == '"' {
		data = data[1 : len(data)-1]
	}
	return string(data), true
}
