package backup

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/slipwayci/slipway/internal/crashpoint"
	"github.com/slipwayci/slipway/internal/progress"
)

// A mariadb-dump stream is one consistent snapshot of a database, written
// table after table: a header of session settings, then for each table its
// structure and its data (INSERT statements, one row a line: strings never
// hold a raw newline), then its triggers, and at the end events, routines
// and the final views. mysqlLoader splits that stream at those boundaries
// while it streams from S3: structures run at once, in order, on one
// connection; data goes in chunks to N connections; triggers, events,
// routines and views are kept for after the data, as the dump intends.

// loadChunk bounds the statements sent to a connection at once (one
// statement larger than this goes alone).
const loadChunk = 4 << 20

// Section titles mariadb-dump writes as "-- <title>" comment lines.
const (
	titleStructure = "Table structure for table `"
	titleData      = "Dumping data for table `"
	titleViewStub  = "Temporary table structure for view `"
	titleViewStub2 = "Temporary view structure for view `"
	titleEvents    = "Dumping events for database "
	titleRoutines  = "Dumping routines for database "
	titleView      = "Final view structure for view `"
)

// section is the part of the dump being read.
type section int

const (
	inHeader section = iota
	inSchema
	inData
	inPost
)

// stageProgress reports one dump's load: bytes as a bar, tables and an ETA
// in the status.
type stageProgress struct {
	task   *progress.Task
	total  int64
	start  time.Time
	read   atomic.Int64
	tables atomic.Int64
	last   atomic.Int64 // unix nanos of the last status
}

func newStageProgress(task *progress.Task, total int64) *stageProgress {
	return &stageProgress{task: task, total: total, start: time.Now()}
}

func (p *stageProgress) add(n int) {
	p.task.Add(int64(n))
	p.read.Add(int64(n))
	if now := time.Now().UnixNano(); now-p.last.Load() > int64(time.Second) {
		p.last.Store(now)
		p.status()
	}
}

func (p *stageProgress) tableDone() {
	p.tables.Add(1)
	p.status()
}

func (p *stageProgress) status() {
	read, el := p.read.Load(), time.Since(p.start)
	eta := "?"
	if read > 0 && p.total > read {
		eta = time.Duration(float64(el) * float64(p.total-read) / float64(read)).Round(time.Second).String()
	} else if p.total > 0 && read >= p.total {
		eta = "0s"
	}
	if n := p.tables.Load(); n > 0 {
		p.task.Status("%d tables loaded, ETA %s", n, eta)
		return
	}
	p.task.Status("ETA %s", eta)
}

// mysqlLoader loads one dump into a staging database.
type mysqlLoader struct {
	db      *sql.DB // multiStatements, one connection per job and one for structures
	staging string
	jobs    int
	// done lists tables a killed run loaded completely: their structure and
	// data are skipped (the stream is still read, and checked, to its end).
	done map[string]bool
	// tableLoaded records a table as loaded (the journal).
	tableLoaded func(ctx context.Context, table string) error
	// post runs the triggers, events, routines and views (the client tool,
	// which knows DELIMITER).
	post     func(ctx context.Context, sql []byte) error
	progress *stageProgress
}

type loadJob struct {
	table string
	sql   string
}

// tableCounts tracks the chunks of each table in flight, so a table is
// recorded as loaded once its last chunk is in.
type tableCounts struct {
	mu      sync.Mutex
	pending map[string]int
	ended   map[string]bool
}

func (l *mysqlLoader) load(ctx context.Context, r io.Reader) error {
	g, gctx := errgroup.WithContext(ctx)
	jobs := make(chan loadJob, l.jobs)
	counts := &tableCounts{pending: map[string]int{}, ended: map[string]bool{}}
	var header []byte
	finish := func(ctx context.Context, table string) error {
		counts.mu.Lock()
		last := counts.ended[table] && counts.pending[table] == 0
		if last {
			delete(counts.ended, table)
		}
		counts.mu.Unlock()
		if !last {
			return nil
		}
		if err := l.tableLoaded(ctx, table); err != nil {
			return err
		}
		l.progress.tableDone()
		crashpoint.Hit("backup.restore.table")
		return nil
	}
	headerReady := make(chan struct{})
	for range l.jobs {
		g.Go(func() error {
			// Workers start with the header, once the splitter has it.
			select {
			case <-headerReady:
			case <-gctx.Done():
				return gctx.Err()
			}
			conn, err := l.session(gctx, header)
			if err != nil {
				return err
			}
			defer conn.Close()
			for j := range jobs {
				if _, err := conn.ExecContext(gctx, j.sql); err != nil {
					return fmt.Errorf("loading table %s.%s: %w", l.staging, j.table, err)
				}
				counts.mu.Lock()
				counts.pending[j.table]--
				counts.mu.Unlock()
				if err := finish(gctx, j.table); err != nil {
					return err
				}
			}
			return nil
		})
	}
	var post bytes.Buffer
	g.Go(func() error {
		defer close(jobs)
		return l.split(gctx, r, &header, headerReady, &post, jobs, counts, finish)
	})
	if err := g.Wait(); err != nil {
		return err
	}
	// Triggers have no IF EXISTS in the dump: a resumed load drops those a
	// killed run created.
	if err := l.dropTriggers(ctx); err != nil {
		return err
	}
	if post.Len() > 0 {
		if err := l.post(ctx, append(append([]byte{}, header...), post.Bytes()...)); err != nil {
			return fmt.Errorf("creating triggers, views, routines and events in %s: %w", l.staging, err)
		}
	}
	return l.checkForeignKeys(ctx)
}

// session is a connection set up as the dump's header says (character set,
// time zone, sql_mode); foreign keys are checked before the swap instead,
// unique keys as rows arrive.
func (l *mysqlLoader) session(ctx context.Context, header []byte) (*sql.Conn, error) {
	conn, err := l.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("connecting to MySQL: %w", err)
	}
	for _, q := range []string{"USE " + quoteID(l.staging), sessionSQL(header), "SET SESSION foreign_key_checks = 0, unique_checks = 1"} {
		if strings.TrimSpace(q) == "" {
			continue
		}
		if _, err := conn.ExecContext(ctx, q); err != nil {
			conn.Close()
			return nil, fmt.Errorf("setting up a session in %s: %w", l.staging, err)
		}
	}
	return conn, nil
}

// sessionSQL is the header without its comment lines (a statement made of
// a comment alone is an error to the server; the client skips it).
func sessionSQL(header []byte) string {
	var b strings.Builder
	for line := range strings.Lines(withoutComments(header)) {
		if !strings.HasPrefix(line, "/*M!999999") {
			b.WriteString(line)
		}
	}
	return strings.TrimSpace(b.String())
}

// withoutComments drops the "--" comment lines around a section: the
// server takes a trailing comment for an empty statement.
func withoutComments(sec []byte) string {
	var b strings.Builder
	for line := range strings.Lines(string(sec)) {
		if t := strings.TrimSpace(line); t == "--" || strings.HasPrefix(t, "-- ") {
			continue
		}
		b.WriteString(line)
	}
	return strings.TrimSpace(b.String())
}

// split reads the stream: the header, then each section in turn.
func (l *mysqlLoader) split(ctx context.Context, r io.Reader, header *[]byte, headerReady chan struct{}, post *bytes.Buffer,
	jobs chan<- loadJob, counts *tableCounts, finish func(context.Context, string) error) error {
	sp := &splitter{l: l, header: header, headerReady: headerReady, post: post, jobs: jobs, counts: counts, finish: finish, delim: ";"}
	defer func() {
		if sp.conn != nil {
			sp.conn.Close()
		}
	}()
	br := bufio.NewReaderSize(r, 1<<20)
	for {
		line, err := readLine(br)
		if len(line) > 0 {
			if err := sp.line(ctx, line); err != nil {
				return err
			}
		}
		if err == io.EOF {
			return sp.flush(ctx)
		}
		if err != nil {
			return err
		}
	}
}

// splitter is split's state: the section being read and, in a table's
// data, the chunk of statements being gathered for a worker.
type splitter struct {
	l           *mysqlLoader
	header      *[]byte
	headerReady chan struct{}
	post        *bytes.Buffer
	jobs        chan<- loadJob
	counts      *tableCounts
	finish      func(context.Context, string) error

	sec      section
	table    string
	schema   bytes.Buffer
	chunk    strings.Builder // "START TRANSACTION;" and statements
	stmt     []byte          // an INSERT spanning lines
	delim    string
	conn     *sql.Conn
	skipping bool // a table a killed run loaded
}

// line takes one line of the dump.
func (sp *splitter) line(ctx context.Context, line []byte) error {
	if title, ok := strings.CutPrefix(string(bytes.TrimRight(line, "\n")), "-- "); ok && len(sp.stmt) == 0 && sp.delim == ";" {
		if next, name, ok := sectionOf(title); ok {
			if err := sp.flush(ctx); err != nil {
				return err
			}
			sp.sec, sp.table = next, name
			sp.skipping = (next == inSchema || next == inData) && sp.l.done[name] && !isViewStub(title)
			return nil
		}
	}
	switch sp.sec {
	case inHeader:
		*sp.header = append(*sp.header, line...)
	case inSchema:
		sp.schema.Write(line)
	case inData:
		if err := sp.dataLine(ctx, line); err != nil {
			return err
		}
	case inPost:
		sp.post.Write(line)
	}
	if sp.sec == inPost || sp.sec == inSchema {
		sp.delim = trackDelimiter(line, sp.delim)
	}
	return nil
}

// dataLine takes a line of a table's data: INSERTs gather into chunks; the
// first other statement (a trigger) ends the data of every table.
func (sp *splitter) dataLine(ctx context.Context, line []byte) error {
	t := bytes.TrimSpace(line)
	switch {
	case len(sp.stmt) > 0 || bytes.HasPrefix(t, []byte("INSERT ")):
		if sp.skipping {
			sp.stmt = append(sp.stmt[:0], 'x') // only track the statement's end
		} else {
			sp.stmt = append(sp.stmt, line...)
		}
		if !bytes.HasSuffix(t, []byte(";")) {
			return nil
		}
		if !sp.skipping {
			if sp.chunk.Len() > 0 && sp.chunk.Len()+len(sp.stmt) > loadChunk {
				if err := sp.send(ctx); err != nil {
					return err
				}
			}
			if sp.chunk.Len() == 0 {
				// One commit a chunk, not one a statement.
				sp.chunk.Grow(min(loadChunk, 2*len(sp.stmt)) + 64)
				sp.chunk.WriteString("START TRANSACTION;\n")
			}
			sp.chunk.Write(sp.stmt)
		}
		sp.stmt = sp.stmt[:0]
	case len(t) == 0, bytes.Equal(t, []byte("--")), bytes.HasPrefix(t, []byte("-- ")),
		bytes.HasPrefix(t, []byte("LOCK TABLES ")), bytes.Equal(t, []byte("UNLOCK TABLES;")),
		bytes.HasPrefix(t, []byte("/*!40000 ALTER TABLE ")):
		// Table locks would serialise the connections.
	default:
		// Triggers follow a table's data: after all data.
		if err := sp.flush(ctx); err != nil {
			return err
		}
		sp.sec = inPost
		sp.post.Write(line)
	}
	return nil
}

// send hands the chunk gathered to a worker.
func (sp *splitter) send(ctx context.Context) error {
	if sp.chunk.Len() == 0 {
		return nil
	}
	sp.chunk.WriteString("COMMIT;")
	sp.counts.mu.Lock()
	sp.counts.pending[sp.table]++
	sp.counts.mu.Unlock()
	select {
	case sp.jobs <- loadJob{table: sp.table, sql: sp.chunk.String()}:
	case <-ctx.Done():
		return ctx.Err()
	}
	sp.chunk = strings.Builder{}
	return nil
}

// flush ends the section being read.
func (sp *splitter) flush(ctx context.Context) error {
	switch sp.sec {
	case inHeader:
		close(sp.headerReady)
		var err error
		if sp.conn, err = sp.l.session(ctx, *sp.header); err != nil {
			return err
		}
	case inSchema:
		if q := withoutComments(sp.schema.Bytes()); !sp.skipping && q != "" {
			if _, err := sp.conn.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("creating table %s.%s: %w", sp.l.staging, sp.table, err)
			}
		}
		sp.schema.Reset()
	case inData:
		if len(sp.stmt) > 0 {
			return fmt.Errorf("the dump ends inside an INSERT into %s", sp.table)
		}
		if sp.skipping {
			return nil
		}
		if err := sp.send(ctx); err != nil {
			return err
		}
		sp.counts.mu.Lock()
		sp.counts.ended[sp.table] = true
		sp.counts.mu.Unlock()
		return sp.finish(ctx, sp.table)
	}
	return nil
}

// sectionOf maps a "-- title" line to the section it starts.
func sectionOf(title string) (section, string, bool) {
	name := func(prefix string) string {
		s := strings.TrimPrefix(title, prefix)
		return strings.ReplaceAll(strings.TrimSuffix(s, "`"), "``", "`")
	}
	switch {
	case strings.HasPrefix(title, titleStructure):
		return inSchema, name(titleStructure), true
	case strings.HasPrefix(title, titleViewStub):
		return inSchema, name(titleViewStub), true
	case strings.HasPrefix(title, titleViewStub2):
		return inSchema, name(titleViewStub2), true
	case strings.HasPrefix(title, titleData):
		return inData, name(titleData), true
	case strings.HasPrefix(title, titleEvents), strings.HasPrefix(title, titleRoutines), strings.HasPrefix(title, titleView):
		return inPost, "", true
	}
	return 0, "", false
}

func isViewStub(title string) bool {
	return strings.HasPrefix(title, titleViewStub) || strings.HasPrefix(title, titleViewStub2)
}

// trackDelimiter follows the client's DELIMITER command, so that section
// titles inside a routine body are not taken for sections.
func trackDelimiter(line []byte, cur string) string {
	if d, ok := bytes.CutPrefix(bytes.TrimSpace(line), []byte("DELIMITER ")); ok {
		return string(bytes.TrimSpace(d))
	}
	return cur
}

// readLine returns the next line with its newline, however long (a row
// may be as large as max_allowed_packet).
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if !errors.Is(err, bufio.ErrBufferFull) {
		return line, err
	}
	buf := append([]byte{}, line...)
	for errors.Is(err, bufio.ErrBufferFull) {
		line, err = br.ReadSlice('\n')
		buf = append(buf, line...)
	}
	return buf, err
}

func (l *mysqlLoader) dropTriggers(ctx context.Context) error {
	conn, err := l.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	names, err := queryStrings(ctx, conn, "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ?", l.staging)
	if err != nil {
		return fmt.Errorf("listing triggers of %s: %w", l.staging, err)
	}
	for _, n := range names {
		if _, err := conn.ExecContext(ctx, "DROP TRIGGER IF EXISTS "+quoteID(l.staging)+"."+quoteID(n)); err != nil {
			return fmt.Errorf("dropping trigger %s.%s: %w", l.staging, n, err)
		}
	}
	return nil
}

// checkForeignKeys verifies every foreign key of the staging database,
// which the load did not check: a row whose parent is missing fails the
// restore before the swap.
func (l *mysqlLoader) checkForeignKeys(ctx context.Context) error {
	rows, err := l.db.QueryContext(ctx, `SELECT TABLE_NAME, CONSTRAINT_NAME, COLUMN_NAME, REFERENCED_TABLE_SCHEMA, REFERENCED_TABLE_NAME, REFERENCED_COLUMN_NAME
		FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = ? AND REFERENCED_TABLE_NAME IS NOT NULL
		ORDER BY TABLE_NAME, CONSTRAINT_NAME, POSITION_IN_UNIQUE_CONSTRAINT`, l.staging)
	if err != nil {
		return fmt.Errorf("listing foreign keys of %s: %w", l.staging, err)
	}
	type fk struct {
		table, name, refSchema, refTable string
		cols, refCols                    []string
	}
	var fks []*fk
	for rows.Next() {
		var tb, name, col, rs, rt, rc string
		if err := rows.Scan(&tb, &name, &col, &rs, &rt, &rc); err != nil {
			rows.Close()
			return err
		}
		if n := len(fks); n == 0 || fks[n-1].table != tb || fks[n-1].name != name {
			fks = append(fks, &fk{table: tb, name: name, refSchema: rs, refTable: rt})
		}
		f := fks[len(fks)-1]
		f.cols, f.refCols = append(f.cols, col), append(f.refCols, rc)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, f := range fks {
		var notNull, match []string
		for i, c := range f.cols {
			notNull = append(notNull, "c."+quoteID(c)+" IS NOT NULL")
			match = append(match, "p."+quoteID(f.refCols[i])+" = c."+quoteID(c))
		}
		q := "SELECT COUNT(*) FROM (SELECT 1 FROM " + quoteID(l.staging) + "." + quoteID(f.table) + " c WHERE " + strings.Join(notNull, " AND ") +
			" AND NOT EXISTS (SELECT 1 FROM " + quoteID(f.refSchema) + "." + quoteID(f.refTable) + " p WHERE " + strings.Join(match, " AND ") + ") LIMIT 1) x"
		var n int
		if err := l.db.QueryRowContext(ctx, q).Scan(&n); err != nil {
			return fmt.Errorf("checking foreign key %s of %s.%s: %w", f.name, l.staging, f.table, err)
		}
		if n > 0 {
			return fmt.Errorf("table %s.%s has rows whose parent is missing from %s (foreign key %s): the dump is not consistent; restore another backup, or fix the data on the primary",
				l.staging, f.table, f.refTable, f.name)
		}
	}
	return nil
}
