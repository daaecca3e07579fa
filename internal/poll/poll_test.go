package poll

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	tests := []struct {
		name string
		b    Backoff
		want []time.Duration
	}{
		{"doubling to max", Backoff{Initial: 100 * time.Millisecond, Max: time.Second}, []time.Duration{100, 200, 400, 800, 1000, 1000}},
		{"constant", Constant(250 * time.Millisecond), []time.Duration{250, 250, 250}},
		{"factor 1.5", Backoff{Initial: 100 * time.Millisecond, Max: 300 * time.Millisecond, Factor: 1.5}, []time.Duration{100, 150, 225, 300}},
		{"max below initial", Backoff{Initial: 200 * time.Millisecond}, []time.Duration{200, 200}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i, w := range tt.want {
				if got := tt.b.Delay(i + 1); got != w*time.Millisecond {
					t.Errorf("Delay(%d) = %v, want %v", i+1, got, w*time.Millisecond)
				}
			}
		})
	}
	j := Backoff{Initial: time.Second, Jitter: true}
	for i := 0; i < 50; i++ {
		if d := j.Delay(1); d < 500*time.Millisecond || d > time.Second {
			t.Fatalf("jittered delay %v outside [0.5s, 1s]", d)
		}
	}
}

func TestUntil(t *testing.T) {
	n := 0
	err := Until(context.Background(), Constant(time.Millisecond), func(context.Context) (bool, error) { n++; return n == 3, nil })
	if err != nil || n != 3 {
		t.Fatalf("err %v after %d calls", err, n)
	}
	failed := errors.New("CREATE_FAILED")
	if err := Until(context.Background(), Constant(time.Millisecond), func(context.Context) (bool, error) { return false, failed }); !errors.Is(err, failed) {
		t.Fatalf("terminal error: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := Until(ctx, Constant(5*time.Millisecond), func(context.Context) (bool, error) { return false, nil }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("timeout: %v", err)
	}
}

func TestRetry(t *testing.T) {
	transient := errors.New("503")
	n := 0
	err := Retry(context.Background(), Constant(time.Millisecond), 5, nil, func(context.Context) error {
		n++
		if n < 3 {
			return transient
		}
		return nil
	})
	if err != nil || n != 3 {
		t.Fatalf("err %v after %d tries", err, n)
	}
	n = 0
	err = Retry(context.Background(), Constant(time.Millisecond), 4, nil, func(context.Context) error { n++; return transient })
	if !errors.Is(err, transient) || n != 4 {
		t.Fatalf("err %v after %d tries, want 4", err, n)
	}
	n = 0
	bad := errors.New("400")
	err = Retry(context.Background(), Constant(time.Millisecond), 0, func(e error) bool { return e == transient }, func(context.Context) error { n++; return bad })
	if !errors.Is(err, bad) || n != 1 {
		t.Fatalf("non-retryable: err %v after %d tries", err, n)
	}
}
