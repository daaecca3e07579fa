// Package poll is slipway's one wait loop and one backoff: poll a condition
// until it holds, fails, or the context ends; retry with growing, jittered
// delays.
package poll

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff is the delay between tries: Initial, multiplied by Factor after
// each try (default 2; 1 polls at a fixed interval) up to Max (default
// Initial). With Jitter the delay is drawn from [d/2, d], which spreads many
// clients hitting one server.
type Backoff struct {
	Initial time.Duration
	Max     time.Duration
	Factor  float64
	Jitter  bool
}

// Constant polls every d.
func Constant(d time.Duration) Backoff { return Backoff{Initial: d, Max: d, Factor: 1} }

// Delay is the wait after the try-th failed try (1-based).
func (b Backoff) Delay(try int) time.Duration {
	f := b.Factor
	if f == 0 {
		f = 2
	}
	maxD := b.Max
	if maxD < b.Initial {
		maxD = b.Initial
	}
	d := float64(b.Initial)
	for i := 1; i < try && d < float64(maxD); i++ {
		d *= f
	}
	out := min(time.Duration(d), maxD)
	if b.Jitter && out > 1 {
		out = out/2 + rand.N(out/2+1)
	}
	return out
}

// Sleep waits for d or until ctx ends, whichever is first; it returns
// ctx.Err() when ctx ended.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Until calls cond until it reports done, returns an error (a terminal state:
// returned at once), or ctx ends (ctx.Err() is returned). cond runs at once,
// then after each delay of b.
func Until(ctx context.Context, b Backoff, cond func(ctx context.Context) (done bool, err error)) error {
	for try := 1; ; try++ {
		done, err := cond(ctx)
		if err != nil || done {
			return err
		}
		if err := Sleep(ctx, b.Delay(try)); err != nil {
			return err
		}
	}
}

// Retry calls f up to attempts times (attempts <= 0: until ctx ends) while
// retryable(err) holds, waiting b between tries. It returns f's last error,
// or ctx's when ctx ended while waiting.
func Retry(ctx context.Context, b Backoff, attempts int, retryable func(error) bool, f func(ctx context.Context) error) error {
	for try := 1; ; try++ {
		err := f(ctx)
		if err == nil || (retryable != nil && !retryable(err)) || (attempts > 0 && try >= attempts) {
			return err
		}
		if serr := Sleep(ctx, b.Delay(try)); serr != nil {
			return err
		}
	}
}
