package statestore

import (
	"crypto/rand"
	"encoding/base64"
	"strconv"
)

// NewIdempotencyKey is a new Idempotency-Key header value: a Structured Field string of 128 random bits,
// such as "\"kq3vX0mS1cC2b8ePp6XZ2w\"". Send one new key per write, and the same key on each retry of that
// write: a retry whose condition fails then finds its own write stored and is answered as the first was,
// while another client's identical write is refused (412/409).
func NewIdempotencyKey() string {
	random := make([]byte, 16)
	_, _ = rand.Read(random) // crypto/rand.Read never fails (Go 1.24 and later)
	return strconv.Quote(base64.RawURLEncoding.EncodeToString(random))
}
