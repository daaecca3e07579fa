package push

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/slipwayci/slipway/internal/fanout"
	"github.com/slipwayci/slipway/internal/poll"
)

// chunkSize and queueDepth bound the memory of one blob's fan-out:
// each target holds at most queueDepth chunks, whatever the layer size.
const (
	chunkSize  = 256 << 10
	queueDepth = 8
)

// errStalled is the cause when an upload made no progress for the stall
// timeout (a registry that stopped reading).
var errStalled = errors.New("upload stalled")

// errSourceCorrupt means the source's bytes do not match their digest:
// retrying cannot help.
var errSourceCorrupt = errors.New("source blob does not match its digest")

// chunk is one buffer of the source, shared read-only by every target it
// was queued to; the last target done with it returns it to the pool, so a
// blob of any size reuses the same few buffers.
type chunk struct {
	buf  *[chunkSize]byte
	n    int
	refs atomic.Int32
}

var bufPool = sync.Pool{New: func() any { return new([chunkSize]byte) }}

func (c *chunk) release() {
	if c.refs.Add(-1) == 0 {
		bufPool.Put(c.buf)
	}
}

var errBodyClosed = errors.New("upload body closed")

// streamTarget is one region's upload of one blob: the request body.
type streamTarget struct {
	ch      chan *chunk
	done    chan struct{} // closed when the target's upload returned
	closing chan struct{} // closed by Close: a blocked Read returns
	once    sync.Once
	end     error // set before ch is closed: io.EOF or the source's error

	mu     sync.Mutex // Read and Close may run on different goroutines
	cur    *chunk
	off    int
	closed bool

	last atomic.Int64 // unix nanos of the last progress
	// waiting is set while Read waits for the source with an empty queue,
	// and sending (shared by every target of the blob) while the source
	// waits for a full queue: together they mean this target is held back by
	// a slower sibling, which is that sibling's stall, not this one's.
	waiting atomic.Bool
	sending *atomic.Bool
	sent    atomic.Int64 // bytes handed to the HTTP request
	// sentAll is set once the whole body was handed over: from then on the
	// registry is committing and the response timeout applies.
	sentAll atomic.Bool
	err     error // the upload's outcome
	// onBytes counts progress (may be nil).
	onBytes func(int64)
}

func (t *streamTarget) Read(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return 0, errBodyClosed
	}
	if t.cur != nil && t.off == t.cur.n {
		t.cur.release()
		t.cur = nil
	}
	if t.cur == nil {
		c, ok, err := t.next()
		if err != nil {
			return 0, err
		}
		if !ok {
			t.last.Store(time.Now().UnixNano())
			t.sentAll.Store(true)
			return 0, t.end
		}
		t.cur, t.off = c, 0
	}
	n := copy(p, t.cur.buf[t.off:t.cur.n])
	t.off += n
	t.last.Store(time.Now().UnixNano())
	t.sent.Add(int64(n))
	if t.onBytes != nil {
		t.onBytes(int64(n))
	}
	return n, nil
}

// next waits for the target's next chunk (ok false: the source ended), with
// waiting set for the watchdog.
func (t *streamTarget) next() (c *chunk, ok bool, err error) {
	t.waiting.Store(true)
	defer t.waiting.Store(false)
	select {
	case c, ok = <-t.ch:
		return c, ok, nil
	case <-t.closing:
		return nil, false, errBodyClosed
	}
}

// Close releases the chunk being read; the HTTP transport calls it when it
// is done with the body, and fanOut calls it after the upload returned.
func (t *streamTarget) Close() error {
	t.once.Do(func() { close(t.closing) })
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.closed && t.cur != nil {
		t.cur.release()
		t.cur = nil
	}
	t.closed = true
	return nil
}

// uploadFunc uploads body (exactly size bytes) for one target.
type uploadFunc func(ctx context.Context, body io.ReadCloser) error

// fanOut reads the blob from its source once and streams it to every upload
// in parallel. A slow target slows the source only when its queue is full; a
// failed target is dropped and the others go on. It returns one error per
// upload (nil for success).
func fanOut(ctx context.Context, b blob, stall, respTimeout time.Duration, uploads []uploadFunc, onBytes []func(int64)) []error {
	targets := make([]*streamTarget, len(uploads))
	sending := new(atomic.Bool)
	for i := range uploads {
		t := &streamTarget{ch: make(chan *chunk, queueDepth), done: make(chan struct{}), closing: make(chan struct{}), sending: sending}
		if onBytes != nil {
			t.onBytes = onBytes[i]
		}
		t.last.Store(time.Now().UnixNano())
		targets[i] = t
	}
	pumped := make(chan error, 1)
	go func() {
		err := pump(ctx, b, targets, sending)
		for _, t := range targets {
			t.end = io.EOF
			if err != nil {
				t.end = err
			}
			close(t.ch)
		}
		pumped <- err
	}()
	_ = fanout.All(ctx, 0, targets, func(ctx context.Context, i int, t *streamTarget) error {
		t.err = t.upload(ctx, uploads[i], stall, respTimeout)
		return nil
	})
	srcErr := <-pumped
	errs := make([]error, len(targets))
	for i, t := range targets {
		errs[i] = t.err
		if t.err == nil && srcErr != nil {
			errs[i] = srcErr
		}
		if t.err != nil && srcErr != nil && errors.Is(srcErr, errSourceCorrupt) {
			errs[i] = srcErr
		}
	}
	return errs
}

// upload runs up with the target as its body, under the stall watchdog,
// then gives back what was queued but never read.
func (t *streamTarget) upload(ctx context.Context, up uploadFunc, stall, respTimeout time.Duration) error {
	tctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := watchdog(tctx, t, stall, respTimeout, cancel)
	err := up(tctx, t)
	stop()
	if cause := context.Cause(tctx); err != nil && errors.Is(cause, errStalled) {
		err = cause
	}
	close(t.done)
	t.Close()
	for c := range t.ch {
		c.release()
	}
	return err
}

// pump copies the source into every live target's queue and checks the
// digest and size before letting the uploads finish: a corrupt source ends
// them with an error, so no registry commits a wrong blob.
func pump(ctx context.Context, b blob, targets []*streamTarget, sending *atomic.Bool) error {
	src, err := b.open()
	if err != nil {
		return fmt.Errorf("opening source blob %s: %w", b.Digest, err)
	}
	defer src.Close()
	h := sha256.New()
	var total int64
	for {
		c := &chunk{buf: bufPool.Get().(*[chunkSize]byte)}
		n, rerr := io.ReadFull(src, c.buf[:])
		c.n = n
		if n > 0 {
			h.Write(c.buf[:n])
			total += int64(n)
			c.refs.Store(int32(len(targets)))
			live := 0
			sending.Store(true)
			for _, t := range targets {
				select {
				case t.ch <- c:
					live++
				case <-t.done:
					c.release()
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			sending.Store(false)
			if live == 0 {
				return nil // every upload ended; their errors say why
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("reading source blob %s: %w", b.Digest, rerr)
		}
	}
	if total != b.Size {
		return fmt.Errorf("%w: %s: read %d bytes, want %d", errSourceCorrupt, b.Digest, total, b.Size)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); b.Digest.Algorithm == "sha256" && got != b.Digest.String() {
		return fmt.Errorf("%w: %s: content hashes to %s", errSourceCorrupt, b.Digest, got)
	}
	return nil
}

// watchdog cancels an upload whose body was not read for d, or whose
// response did not come within resp of sending the last byte (a registry
// commits a large blob in its storage before answering, so that wait is
// longer). Time spent held back by a slower sibling does not count; the
// cause, which wraps errStalled, says what was seen when it fired.
func watchdog(ctx context.Context, t *streamTarget, d, resp time.Duration, cancel context.CancelCauseFunc) (stop func()) {
	if d <= 0 {
		return func() {}
	}
	wctx, stop := context.WithCancel(ctx)
	go func() {
		_ = poll.Until(wctx, poll.Constant(d/4), func(context.Context) (bool, error) {
			if t.waiting.Load() && t.sending != nil && t.sending.Load() {
				t.last.Store(time.Now().UnixNano())
				return false, nil
			}
			all, limit := t.sentAll.Load(), d
			if all {
				limit = resp
			}
			if limit <= 0 || time.Since(time.Unix(0, t.last.Load())) <= limit {
				return false, nil
			}
			if all {
				cancel(fmt.Errorf("%w: no response for %s after sending all %d bytes", errStalled, resp, t.sent.Load()))
			} else {
				cancel(fmt.Errorf("%w: no progress for %s after %d bytes", errStalled, d, t.sent.Load()))
			}
			return true, nil
		})
	}()
	return stop
}
