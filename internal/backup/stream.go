package backup

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"strings"

	"filippo.io/age"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Compression algorithms.
const (
	CompressZstd = "zstd"
	CompressGzip = "gzip"
)

// hashCounter tees what passes through into a sha256 and a byte count.
type hashCounter struct {
	h hash.Hash
	n int64
}

func newHashCounter() *hashCounter { return &hashCounter{h: sha256.New()} }

func (c *hashCounter) Write(p []byte) (int, error) {
	c.h.Write(p)
	c.n += int64(len(p))
	return len(p), nil
}

func (c *hashCounter) Sum() string { return hex.EncodeToString(c.h.Sum(nil)) }

// suffix returns the object name suffix of a dump stored with these settings.
func suffix(compression string, encrypted bool) string {
	s := ".zst"
	if compression == CompressGzip {
		s = ".gz"
	}
	if encrypted {
		s += ".age"
	}
	return s
}

func checkCompression(c string) error {
	if c != CompressZstd && c != CompressGzip {
		return fmt.Errorf("%q is not zstd or gzip", c)
	}
	return nil
}

// encoder is the write side of one dump: raw → compress → encrypt → out.
type encoder struct {
	raw, stored *hashCounter
	comp        io.WriteCloser
	enc         io.WriteCloser // nil without encryption
	w           io.Writer      // where the dump tool writes
}

func newEncoder(out io.Writer, compression string, level int, recipients []age.Recipient) (*encoder, error) {
	e := &encoder{raw: newHashCounter(), stored: newHashCounter()}
	var sink io.Writer = io.MultiWriter(out, e.stored)
	if len(recipients) > 0 {
		ew, err := age.Encrypt(sink, recipients...)
		if err != nil {
			return nil, fmt.Errorf("starting age encryption: %w", err)
		}
		e.enc = ew
		sink = ew
	}
	switch compression {
	case CompressGzip:
		if level == 0 {
			level = gzip.DefaultCompression
		}
		gw, err := gzip.NewWriterLevel(sink, level)
		if err != nil {
			return nil, fmt.Errorf("gzip level %d: %w", level, err)
		}
		e.comp = gw
	default:
		// zstd level 1 compresses several times faster than a dump tool
		// writes, on one core; a 4 MiB window keeps memory bounded.
		zl := zstd.SpeedFastest
		if level != 0 {
			zl = zstd.EncoderLevelFromZstd(level)
		}
		zw, err := zstd.NewWriter(sink, zstd.WithEncoderLevel(zl), zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(4<<20))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		e.comp = zw
	}
	e.w = io.MultiWriter(e.comp, e.raw)
	return e, nil
}

// Close flushes the compressor and the encryption.
func (e *encoder) Close() error {
	if err := e.comp.Close(); err != nil {
		return fmt.Errorf("finishing compression: %w", err)
	}
	if e.enc != nil {
		if err := e.enc.Close(); err != nil {
			return fmt.Errorf("finishing encryption: %w", err)
		}
	}
	return nil
}

// decoder is the read side: stored → decrypt → decompress → raw.
type decoder struct {
	raw, stored *hashCounter
	r           io.Reader
	src         io.Reader // the stored bytes, counted
	close       func()
}

// drain reads what the decompressor left of the stored stream, so the
// stored checksum covers the whole object (and trailing garbage shows).
func (d *decoder) drain() error {
	_, err := io.Copy(io.Discard, d.src)
	return err
}

func newDecoder(in io.Reader, compression string, encrypted bool, identities []age.Identity) (*decoder, error) {
	d := &decoder{raw: newHashCounter(), stored: newHashCounter(), close: func() {}}
	var src io.Reader = io.TeeReader(in, d.stored)
	d.src = src
	if encrypted {
		if len(identities) == 0 {
			return nil, fmt.Errorf("the backup is encrypted and no age identity was given")
		}
		dr, err := age.Decrypt(src, identities...)
		if err != nil {
			return nil, fmt.Errorf("decrypting: %w", err)
		}
		src = dr
	}
	switch compression {
	case CompressGzip:
		gr, err := gzip.NewReader(src)
		if err != nil {
			return nil, fmt.Errorf("opening gzip stream: %w", err)
		}
		d.r = gr
		d.close = func() { gr.Close() }
	case CompressZstd:
		zr, err := zstd.NewReader(src, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxWindow(64<<20))
		if err != nil {
			return nil, fmt.Errorf("opening zstd stream: %w", err)
		}
		d.r = zr
		d.close = zr.Close
	default:
		return nil, fmt.Errorf("unknown compression %q", compression)
	}
	d.r = io.TeeReader(d.r, d.raw)
	return d, nil
}

// check compares what was read with what the manifest promises. Call it
// after the stream was read to its end.
func (d *decoder) check(dump Dump) error {
	var bad []string
	if d.stored.n != dump.Size {
		bad = append(bad, fmt.Sprintf("stored size %d, manifest says %d", d.stored.n, dump.Size))
	}
	if s := d.stored.Sum(); s != dump.SHA256 {
		bad = append(bad, fmt.Sprintf("stored sha256 %s, manifest says %s", s, dump.SHA256))
	}
	if d.raw.n != dump.RawSize {
		bad = append(bad, fmt.Sprintf("dump size %d, manifest says %d", d.raw.n, dump.RawSize))
	}
	if s := d.raw.Sum(); s != dump.RawSHA256 {
		bad = append(bad, fmt.Sprintf("dump sha256 %s, manifest says %s", s, dump.RawSHA256))
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w: %s %s (%s): %s", ErrChecksum, dump.Kind, dump.Database, dump.Key, strings.Join(bad, "; "))
	}
	return nil
}
