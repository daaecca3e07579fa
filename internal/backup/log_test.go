package backup

import (
	"bytes"
	"log/slog"
	"sync"
	"testing"

	"github.com/slipwayci/slipway/internal/logging"
)

// syncBuffer collects log output written from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var testLogs sync.Map // test name -> *syncBuffer

// testLogger logs to a buffer that tests can search for leaked secrets, and
// prints it when the test fails.
func testLogger(t *testing.T) *slog.Logger {
	buf := &syncBuffer{}
	testLogs.Store(t.Name(), buf)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs:\n%s", buf.String())
		}
	})
	return logging.New(buf, "json", true)
}

func logsOf(t *testing.T) string {
	if b, ok := testLogs.Load(t.Name()); ok {
		return b.(*syncBuffer).String()
	}
	return ""
}
