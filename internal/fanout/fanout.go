// Package fanout is slipway's one way to run work in parallel: a bounded
// errgroup, either failing fast (Each) or letting every task report (All,
// for "every region must answer").
package fanout

import (
	"context"
	"errors"
	"sync"

	"golang.org/x/sync/errgroup"
)

// Each runs fn(ctx, i, items[i]) for every item, at most limit at once
// (limit <= 0: no bound). The first error cancels the context of the others
// and is the one returned.
func Each[T any](ctx context.Context, limit int, items []T, fn func(ctx context.Context, i int, item T) error) error {
	g, gctx := errgroup.WithContext(ctx)
	if limit > 0 {
		g.SetLimit(limit)
	}
	for i, item := range items {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error { return fn(gctx, i, item) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}

// All runs fn(ctx, i, items[i]) for every item, at most limit at once
// (limit <= 0: no bound), each to its end whatever the others do, and returns
// every error joined in item order (nil when all succeeded).
func All[T any](ctx context.Context, limit int, items []T, fn func(ctx context.Context, i int, item T) error) error {
	errs := make([]error, len(items))
	var g errgroup.Group
	if limit > 0 {
		g.SetLimit(limit)
	}
	for i, item := range items {
		g.Go(func() error {
			errs[i] = fn(ctx, i, item)
			return nil
		})
	}
	_ = g.Wait()
	return errors.Join(errs...)
}

// Collector gathers errors from tasks that run on their own (streams,
// goroutines started elsewhere); its zero value is ready.
type Collector struct {
	mu   sync.Mutex
	errs []error
}

// Add records err (nil is ignored).
func (c *Collector) Add(err error) {
	if err == nil {
		return
	}
	c.mu.Lock()
	c.errs = append(c.errs, err)
	c.mu.Unlock()
}

// Err returns every recorded error joined.
func (c *Collector) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return errors.Join(c.errs...)
}
