package backup

import "io"

func ioCopyN(w io.Writer, r io.Reader, n int64) (int64, error) { return io.CopyN(w, r, n) }
