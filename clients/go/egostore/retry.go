package egostore

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"time"
)

// retrying sends requests through an *http.Client, with the API key, and sends again those answered 503
// while the retry window allows.
type retrying struct {
	client   *http.Client
	apiKey   string
	retryFor time.Duration
	inject   func(context.Context, http.Header)
}

func (r retrying) Do(request *http.Request) (*http.Response, error) {
	if r.apiKey != "" {
		request.Header.Set("Authorization", "Bearer "+r.apiKey)
	}
	if r.inject != nil {
		r.inject(request.Context(), request.Header)
	}
	start := time.Now()
	for attempt := 0; ; attempt++ {
		response, err := r.client.Do(request)
		if err != nil || response.StatusCode != http.StatusServiceUnavailable {
			return response, err
		}
		delay := retryAfter(response.Header.Get("Retry-After"), attempt)
		if time.Since(start)+delay > r.retryFor || (request.Body != nil && request.GetBody == nil) {
			return response, nil
		}
		_, _ = io.Copy(io.Discard, response.Body)
		_ = response.Body.Close()
		if err := sleep(request.Context(), delay); err != nil {
			return nil, err
		}
		if request, err = again(request); err != nil {
			return nil, err
		}
	}
}

// retryAfter is the delay a 503 asks for in seconds, or a short backoff when it names none.
func retryAfter(header string, attempt int) time.Duration {
	if seconds, err := strconv.Atoi(header); err == nil && seconds >= 0 {
		return time.Duration(seconds) * time.Second
	}
	if when, err := http.ParseTime(header); err == nil {
		return max(time.Until(when), 0)
	}
	return min(100*time.Millisecond<<attempt, 2*time.Second)
}

func sleep(ctx context.Context, delay time.Duration) error {
	timer := time.NewTimer(delay)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// again is the request with its body rewound.
func again(request *http.Request) (*http.Request, error) {
	next := request.Clone(request.Context())
	if request.GetBody != nil {
		body, err := request.GetBody()
		if err != nil {
			return nil, err
		}
		next.Body = body
	}
	return next, nil
}
