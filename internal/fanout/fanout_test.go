package fanout

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

func TestEachBoundsAndFailsFast(t *testing.T) {
	var running, peak atomic.Int32
	items := make([]int, 20)
	err := Each(context.Background(), 3, items, func(ctx context.Context, i int, _ int) error {
		n := running.Add(1)
		defer running.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(5 * time.Millisecond)
		return nil
	})
	if err != nil || peak.Load() > 3 || peak.Load() < 2 {
		t.Fatalf("err %v peak %d (want 2..3)", err, peak.Load())
	}

	boom := errors.New("boom")
	var started atomic.Int32
	err = Each(context.Background(), 1, make([]int, 10), func(ctx context.Context, i int, _ int) error {
		started.Add(1)
		if i == 2 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) || started.Load() > 4 {
		t.Fatalf("err %v, %d started after the failure at 2", err, started.Load())
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Each(ctx, 2, []int{1}, func(context.Context, int, int) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: %v", err)
	}
}

func TestAllReportsEveryError(t *testing.T) {
	regions := []string{"a", "b", "c"}
	var ran atomic.Int32
	err := All(context.Background(), 0, regions, func(ctx context.Context, i int, r string) error {
		ran.Add(1)
		if r == "c" {
			return nil
		}
		return fmt.Errorf("region %s: down", r)
	})
	if ran.Load() != 3 || err == nil || err.Error() != "region a: down\nregion b: down" {
		t.Fatalf("ran %d, err %q", ran.Load(), err)
	}
	if err := All(context.Background(), 2, regions, func(context.Context, int, string) error { return nil }); err != nil {
		t.Fatal(err)
	}
	var c Collector
	c.Add(nil)
	c.Add(errors.New("x"))
	if c.Err() == nil || c.Err().Error() != "x" {
		t.Fatalf("collector: %v", c.Err())
	}
}
