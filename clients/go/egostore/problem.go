package egostore

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"

	"github.com/durable-state-store/durable-state-store/clients/go/statestore"
)

// ErrFenced is wrapped by the error of a fenced WriteState that found another version stored than the one
// it follows; errors.As also finds the service's *ProblemError in it.
var ErrFenced = errors.New("egostore: fenced: the stored state is not the one this write follows")

// ErrNotConnected is returned by calls made before Connect or after Disconnect.
var ErrNotConnected = errors.New("egostore: not connected")

// ProblemError is an answer of the service other than success: its RFC 9457 problem document, or what
// could be made of a body that was none (from a proxy in between, say).
type ProblemError struct {
	Status int
	Type   string
	Title  string
	Detail string
	// CurrentVersion is the stored version that a refused conditional write found, if any.
	CurrentVersion *uint64
}

func (e *ProblemError) Error() string {
	return fmt.Sprintf("durable-state-store answered %d %s (%s): %s", e.Status, e.Title, e.Type, e.Detail)
}

func problemOf(response *http.Response, body []byte) *ProblemError {
	mediaType, _, _ := mime.ParseMediaType(response.Header.Get("Content-Type"))
	var problem statestore.Problem
	if mediaType != "application/problem+json" || json.Unmarshal(body, &problem) != nil {
		const most = 256
		if len(body) > most {
			body = body[:most]
		}
		return &ProblemError{
			Status: response.StatusCode, Type: "about:blank", Title: http.StatusText(response.StatusCode),
			Detail: string(body),
		}
	}
	result := &ProblemError{Status: response.StatusCode, Type: problem.Type, Title: problem.Title, Detail: problem.Detail}
	if problem.CurrentVersion != nil {
		current := uint64(*problem.CurrentVersion)
		result.CurrentVersion = &current
	}
	return result
}
