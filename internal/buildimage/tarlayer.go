package buildimage

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// fileLayer is a gzip layer already written to a file (in the layout's blob
// directory), with its digests computed while it was written, so the tree
// is read and compressed exactly once.
type fileLayer struct {
	path      string
	digest    v1.Hash
	diffID    v1.Hash
	size      int64
	mediaType types.MediaType
}

var _ v1.Layer = (*fileLayer)(nil)

func (l *fileLayer) Digest() (v1.Hash, error)            { return l.digest, nil }
func (l *fileLayer) DiffID() (v1.Hash, error)            { return l.diffID, nil }
func (l *fileLayer) Size() (int64, error)                { return l.size, nil }
func (l *fileLayer) MediaType() (types.MediaType, error) { return l.mediaType, nil }
func (l *fileLayer) Compressed() (io.ReadCloser, error)  { return os.Open(l.path) }
func (l *fileLayer) Uncompressed() (io.ReadCloser, error) {
	f, err := os.Open(l.path)
	if err != nil {
		return nil, err
	}
	zr, err := gzip.NewReader(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("reading layer %s: %w", l.digest, err)
	}
	return &readCloser{Reader: zr, close: func() error { zr.Close(); return f.Close() }}, nil
}

type readCloser struct {
	io.Reader
	close func() error
}

func (r *readCloser) Close() error { return r.close() }

// countingWriter counts bytes on their way to w.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// writeLayerBlob writes the layer adding src at dest into blobDir (the
// layout's blobs/sha256) and returns it. Tar headers are normalised so the
// blob depends only on the tree's names, contents, symlinks and executable
// bits: uid/gid 0, no user names, mtime = epoch, mode 0755 for directories
// and executables and 0644 for other files (what git preserves), entries in
// lexical order. counter sees the uncompressed bytes, for progress.
func writeLayerBlob(ctx context.Context, blobDir, src, dest string, epoch time.Time, mt types.MediaType, counter io.Writer) (*fileLayer, error) {
	return writeLayer(blobDir, src, mt, counter, func(tw *tar.Writer) error { return addTree(ctx, tw, src, dest, epoch) })
}

// writeLayer writes the gzip layer whose tar fill writes into blobDir and
// returns it; what names the layer's source in errors.
func writeLayer(blobDir, what string, mt types.MediaType, counter io.Writer, fill func(tw *tar.Writer) error) (*fileLayer, error) {
	tmp, err := os.CreateTemp(blobDir, ".layer-*")
	if err != nil {
		return nil, fmt.Errorf("creating layer file: %w", err)
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name()) // no-op after the rename
	}()
	diffH, digH := sha256.New(), sha256.New()
	bw := bufio.NewWriterSize(tmp, 1<<20)
	cw := &countingWriter{w: io.MultiWriter(bw, digH)}
	zw, err := gzip.NewWriterLevel(cw, gzip.DefaultCompression)
	if err != nil {
		return nil, err
	}
	if counter == nil {
		counter = io.Discard
	}
	tw := tar.NewWriter(io.MultiWriter(zw, diffH, counter))
	if err := fill(tw); err != nil {
		return nil, err
	}
	for _, c := range []io.Closer{tw, zw} {
		if err := c.Close(); err != nil {
			return nil, fmt.Errorf("writing layer for %s: %w", what, err)
		}
	}
	if err := bw.Flush(); err != nil {
		return nil, fmt.Errorf("writing layer for %s: %w", what, err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("writing layer for %s: %w", what, err)
	}
	l := &fileLayer{digest: sum(digH), diffID: sum(diffH), size: cw.n, mediaType: mt}
	l.path = filepath.Join(blobDir, l.digest.Hex)
	if err := os.Rename(tmp.Name(), l.path); err != nil {
		return nil, fmt.Errorf("writing layer for %s: %w", what, err)
	}
	return l, nil
}

func sum(h hash.Hash) v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
}

// addTree writes src (a directory, file or symlink) at dest, preceded by
// dest's parent directories.
func addTree(ctx context.Context, tw *tar.Writer, src, dest string, epoch time.Time) error {
	st, err := os.Lstat(src)
	if err != nil {
		return fmt.Errorf("reading %s: %w", src, err)
	}
	dest = path.Clean("/" + dest)
	if !st.IsDir() && strings.HasSuffix(dest, "/") {
		dest = path.Join(dest, filepath.Base(src))
	}
	name := strings.TrimPrefix(dest, "/")
	// Parent directories, so the layer unpacks the same on any base.
	if name != "" {
		parts := strings.Split(name, "/")
		for i := 1; i < len(parts); i++ {
			if err := tw.WriteHeader(dirHeader(strings.Join(parts[:i], "/"), epoch)); err != nil {
				return err
			}
		}
	}
	if !st.IsDir() {
		return addEntry(tw, src, name, st, epoch)
	}
	buf := make([]byte, 1<<20)
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("reading %s: %w", p, err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		entry := path.Join(name, filepath.ToSlash(rel))
		if rel == "." {
			if name == "" {
				return nil // the image root itself
			}
			entry = name
		}
		info, err := d.Info()
		if err != nil {
			return fmt.Errorf("reading %s: %w", p, err)
		}
		return addEntryBuf(tw, p, entry, info, epoch, buf)
	})
}

func dirHeader(name string, epoch time.Time) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: 0o755, ModTime: epoch}
}

func addEntry(tw *tar.Writer, p, name string, info fs.FileInfo, epoch time.Time) error {
	return addEntryBuf(tw, p, name, info, epoch, make([]byte, 1<<20))
}

func addEntryBuf(tw *tar.Writer, p, name string, info fs.FileInfo, epoch time.Time, buf []byte) error {
	h := &tar.Header{Name: name, ModTime: epoch, Mode: 0o644}
	switch m := info.Mode(); {
	case m.IsDir():
		return tw.WriteHeader(dirHeader(name, epoch))
	case m&fs.ModeSymlink != 0:
		target, err := os.Readlink(p)
		if err != nil {
			return fmt.Errorf("reading symlink %s: %w", p, err)
		}
		h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, target, 0o777
		return tw.WriteHeader(h)
	case m.IsRegular():
		h.Typeflag, h.Size = tar.TypeReg, info.Size()
		if m&0o111 != 0 {
			h.Mode = 0o755
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return fmt.Errorf("reading %s: %w", p, err)
		}
		defer f.Close()
		n, err := io.CopyBuffer(tw, io.LimitReader(f, h.Size), buf)
		if err != nil {
			return fmt.Errorf("reading %s: %w", p, err)
		}
		if n != h.Size {
			return fmt.Errorf("reading %s: file changed size during the build (%d of %d bytes)", p, n, h.Size)
		}
		return nil
	default:
		return fmt.Errorf("%s: %s files cannot go into an image layer (only directories, files and symlinks)", p, m.Type())
	}
}
