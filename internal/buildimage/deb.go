package buildimage

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/bzip2"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// arMagic starts every ar archive, and so every .deb.
const arMagic = "!<arch>\n"

// arReader reads the members of an ar archive (the container of a .deb):
// the common format of ar(5), with GNU's trailing '/' on names. Members
// are read in order and only once, so a .deb is read as a stream.
type arReader struct {
	r       *bufio.Reader
	left    int64 // unread bytes of the current member
	pad     bool  // the current member is followed by a padding byte
	started bool
}

// arMember is the header of one ar member.
type arMember struct {
	Name string
	Size int64
}

func newArReader(r io.Reader) *arReader { return &arReader{r: bufio.NewReaderSize(r, 64<<10)} }

// Next skips what is left of the current member and returns the next
// header; io.EOF after the last.
func (a *arReader) Next() (*arMember, error) {
	if !a.started {
		a.started = true
		magic := make([]byte, len(arMagic))
		if _, err := io.ReadFull(a.r, magic); err != nil || string(magic) != arMagic {
			return nil, errors.New("not an ar archive (a .deb starts with !<arch>)")
		}
	}
	skip := a.left
	if a.pad {
		skip++
	}
	if _, err := io.CopyN(io.Discard, a.r, skip); err != nil {
		return nil, fmt.Errorf("ar archive truncated: %w", err)
	}
	a.left, a.pad = 0, false
	var h [60]byte
	n, err := io.ReadFull(a.r, h[:])
	switch {
	case n == 0 && err == io.EOF:
		return nil, io.EOF
	case err != nil:
		return nil, fmt.Errorf("ar archive truncated in a member header: %w", err)
	case string(h[58:60]) != "`\n":
		return nil, fmt.Errorf("ar archive: bad member header %q", h[:])
	}
	name := strings.TrimSpace(string(h[0:16]))
	name = strings.TrimSuffix(name, "/") // GNU ar
	size, err := strconv.ParseInt(strings.TrimSpace(string(h[48:58])), 10, 64)
	if err != nil || size < 0 {
		return nil, fmt.Errorf("ar archive: member %q has a bad size %q", name, strings.TrimSpace(string(h[48:58])))
	}
	a.left, a.pad = size, size%2 == 1
	return &arMember{Name: name, Size: size}, nil
}

// Read reads the current member's data.
func (a *arReader) Read(p []byte) (int, error) {
	if a.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > a.left {
		p = p[:a.left]
	}
	n, err := a.r.Read(p)
	a.left -= int64(n)
	if err == io.EOF && a.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// decompressor opens a compressed member of a .deb by its name's suffix
// (control.tar.xz, data.tar.zst...), as dpkg-deb writes them.
func decompressor(name string, r io.Reader) (io.Reader, func(), error) {
	noop := func() {}
	switch {
	case strings.HasSuffix(name, ".tar"):
		return r, noop, nil
	case strings.HasSuffix(name, ".tar.gz"):
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, nil, err
		}
		return zr, func() { zr.Close() }, nil
	case strings.HasSuffix(name, ".tar.xz"):
		zr, err := xz.NewReader(r)
		if err != nil {
			return nil, nil, err
		}
		return zr, noop, nil
	case strings.HasSuffix(name, ".tar.zst"):
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
		if err != nil {
			return nil, nil, err
		}
		return zr, zr.Close, nil
	case strings.HasSuffix(name, ".tar.bz2"):
		return bzip2.NewReader(r), noop, nil
	}
	return nil, nil, fmt.Errorf("member %s: unknown compression (dpkg-deb writes .tar, .tar.gz, .tar.xz, .tar.zst)", name)
}

// debPackage is what reading a .deb gives: its control fields and, through
// the callback, its data.tar entries.
type debPackage struct {
	Control Paragraph
}

// readDeb reads a binary package: debian-binary (format 2.0), then
// control.tar.* (whose ./control it parses), then data.tar.*, whose entries
// it hands to each in archive order. each may read the entry's content
// from tr.
func readDeb(r io.Reader, each func(h *tar.Header, tr io.Reader) error) (*debPackage, error) {
	a := newArReader(r)
	pkg := &debPackage{}
	step := 0
	for {
		m, err := a.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		switch {
		case step == 0:
			if m.Name != "debian-binary" {
				return nil, fmt.Errorf("not a Debian package: first member is %q, not debian-binary", m.Name)
			}
			v, err := io.ReadAll(io.LimitReader(a, 64))
			if err != nil {
				return nil, err
			}
			if !strings.HasPrefix(string(v), "2.") {
				return nil, fmt.Errorf("package format %q is not supported (Debian 2.x)", strings.TrimSpace(string(v)))
			}
			step = 1
		case step == 1 && strings.HasPrefix(m.Name, "control.tar"):
			if pkg.Control, err = readControl(m.Name, a); err != nil {
				return nil, fmt.Errorf("reading %s: %w", m.Name, err)
			}
			step = 2
		case step == 2 && strings.HasPrefix(m.Name, "data.tar"):
			if err := readTar(m.Name, a, each); err != nil {
				return nil, fmt.Errorf("reading %s: %w", m.Name, err)
			}
			step = 3
		case strings.HasPrefix(m.Name, "_"):
			// Members starting with '_' are reserved and may be skipped (deb(5)).
		case step < 3:
			return nil, fmt.Errorf("unexpected member %q (deb(5): debian-binary, control.tar, data.tar)", m.Name)
		}
	}
	if step != 3 {
		return nil, errors.New("not a Debian package: no control.tar and data.tar")
	}
	return pkg, nil
}

func readControl(name string, r io.Reader) (Paragraph, error) {
	var control Paragraph
	err := readTar(name, r, func(h *tar.Header, tr io.Reader) error {
		if strings.TrimPrefix(h.Name, "./") != "control" {
			return nil
		}
		data, err := io.ReadAll(io.LimitReader(tr, 1<<20))
		if err != nil {
			return err
		}
		ps, err := parseParagraphs(bytes.NewReader(data))
		if err != nil || len(ps) != 1 {
			return fmt.Errorf("bad control file: %v", err)
		}
		control = ps[0]
		return nil
	})
	if err == nil && control == nil {
		err = errors.New("no control file")
	}
	return control, err
}

func readTar(name string, r io.Reader, each func(h *tar.Header, tr io.Reader) error) error {
	zr, closeFn, err := decompressor(name, r)
	if err != nil {
		return err
	}
	defer closeFn()
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if err := each(h, tr); err != nil {
			return err
		}
	}
	// Drain, so that a compressed stream's checksum is verified.
	_, err = io.Copy(io.Discard, zr)
	return err
}

// Paragraph is one stanza of a Debian control file (a Packages index entry,
// a .deb's control): field names as written, values with continuation
// lines joined by newlines.
type Paragraph map[string]string

// parseParagraphs reads deb822 paragraphs separated by blank lines.
func parseParagraphs(r io.Reader) ([]Paragraph, error) {
	var out []Paragraph
	var cur Paragraph
	var last string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	line := 0
	for sc.Scan() {
		line++
		t := sc.Text()
		switch {
		case strings.TrimSpace(t) == "":
			if cur != nil {
				out = append(out, cur)
			}
			cur, last = nil, ""
		case t[0] == ' ' || t[0] == '\t':
			if last == "" {
				return nil, fmt.Errorf("line %d: continuation line without a field", line)
			}
			cur[last] += "\n" + strings.TrimSpace(t)
		case strings.HasPrefix(t, "#"):
		default:
			k, v, ok := strings.Cut(t, ":")
			if !ok {
				return nil, fmt.Errorf("line %d: %q is not a field (Name: value)", line, t)
			}
			if cur == nil {
				cur = Paragraph{}
			}
			last = k
			cur[k] = strings.TrimSpace(v)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if cur != nil {
		out = append(out, cur)
	}
	return out, nil
}
