package backup

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func getAll(t *testing.T, st ObjectStore, key string) []byte {
	t.Helper()
	rc, err := st.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func putAll(t *testing.T, st ObjectStore, key string, b []byte) {
	t.Helper()
	if err := st.Put(context.Background(), key, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
}

// TestRestoreRefusesBadBackups corrupts a fresh backup in several ways and
// checks that the restore fails and leaves the DR databases (MariaDB and
// FerretDB) exactly as they were, with no staging leftovers.
func TestRestoreRefusesBadBackups(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	// The DR site has its own, different data.
	app1, app2, shop := e.seed(5000, 500, 1000, 20)

	dumpKey := func(m *Manifest, kind, db string) string {
		for _, d := range m.Dumps {
			if d.Kind == kind && d.Database == db {
				return d.Key
			}
		}
		t.Fatalf("no %s dump of %s in %+v", kind, db, m.Dumps)
		return ""
	}
	rewriteManifest := func(st ObjectStore, prefix string, m *Manifest, edit func(*Dump)) {
		for i := range m.Dumps {
			edit(&m.Dumps[i])
		}
		putAll(t, st, prefix+m.ID+"/"+manifestName, encodeManifest(m))
	}
	for _, tc := range []struct {
		name    string
		corrupt func(st ObjectStore, prefix string, m *Manifest)
		latest  bool
		wantErr string
		want    error
	}{
		{
			name: "truncated object",
			corrupt: func(st ObjectStore, prefix string, m *Manifest) {
				k := dumpKey(m, KindMySQL, app1)
				b := getAll(t, st, k)
				putAll(t, st, k, b[:len(b)/2])
			},
			want: ErrChecksum, wantErr: "bytes in S3",
		},
		{
			// The manifest agrees with the cut size, so only the streamed
			// checks can catch it, after the MySQL dumps were staged.
			name: "truncated object with matching size",
			corrupt: func(st ObjectStore, prefix string, m *Manifest) {
				k := dumpKey(m, KindMongo, shop)
				b := getAll(t, st, k)
				putAll(t, st, k, b[:len(b)*2/3])
				rewriteManifest(st, prefix, m, func(d *Dump) {
					if d.Key == k {
						d.Size = int64(len(b) * 2 / 3)
					}
				})
			},
			latest: true, want: ErrChecksum,
		},
		{
			name: "flipped byte",
			corrupt: func(st ObjectStore, prefix string, m *Manifest) {
				k := dumpKey(m, KindMySQL, app2)
				b := getAll(t, st, k)
				b[len(b)/2] ^= 0xff
				putAll(t, st, k, b)
			},
			want: ErrChecksum,
		},
		{
			// A valid stream that is not what the manifest recorded: it
			// loads completely into staging and is still refused.
			name: "checksum mismatch",
			corrupt: func(st ObjectStore, prefix string, m *Manifest) {
				rewriteManifest(st, prefix, m, func(d *Dump) {
					if d.Kind == KindMongo {
						d.RawSHA256 = strings.Repeat("0", 64)
					}
				})
			},
			latest: true, want: ErrChecksum, wantErr: "dump sha256",
		},
		{
			name: "no manifest",
			corrupt: func(st ObjectStore, prefix string, m *Manifest) {
				if err := st.Delete(ctx, prefix+m.ID+"/"+manifestName); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: "has no manifest",
		},
		{
			name: "no manifest, latest",
			corrupt: func(st ObjectStore, prefix string, m *Manifest) {
				if err := st.Delete(ctx, prefix+m.ID+"/"+manifestName); err != nil {
					t.Fatal(err)
				}
			},
			latest: true, wantErr: "no complete backup",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := e.common()
			c.S3, _ = s3Env(t)
			st, err := NewS3Store(c.S3)
			if err != nil {
				t.Fatal(err)
			}
			my, mg := e.primary, e.mongoP
			my.Databases, mg.Databases = []string{app1, app2}, []string{shop}
			m, err := Create(ctx, CreateOptions{Common: c, Site: "primary", MySQL: my, Mongo: mg})
			if err != nil {
				t.Fatal(err)
			}
			tc.corrupt(st, c.S3.Prefix, m)

			beforeMy := mysqlState(t, e.dr, app1, app2)
			beforeMg := mongoState(t, e.mongoD, shop)
			opts := RestoreOptions{Common: c, MySQL: e.dr, Mongo: e.mongoD}
			if tc.latest {
				opts.Latest = true
			} else {
				opts.ID = m.ID
			}
			_, err = Restore(ctx, opts)
			if err == nil {
				t.Fatal("restore of a bad backup succeeded")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("error %v is not %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not mention %q", err, tc.wantErr)
			}
			if diff := cmp.Diff(beforeMy, mysqlState(t, e.dr, app1, app2)); diff != "" {
				t.Errorf("DR MySQL changed (-before +after):\n%s", diff)
			}
			if diff := cmp.Diff(beforeMg, mongoState(t, e.mongoD, shop)); diff != "" {
				t.Errorf("DR MongoDB changed (-before +after):\n%s", diff)
			}
			// Verify agrees that the backup is bad, without a database.
			if !strings.HasPrefix(tc.name, "no manifest") {
				if _, err := Verify(ctx, VerifyOptions{Common: c, ID: m.ID}); err == nil {
					t.Error("verify passed a bad backup")
				}
			}
		})
	}
}

// faultProxy forwards TCP to an S3 server and, once more than cutAfter
// bytes went upstream, calls onCut and (while down) drops every connection.
type faultProxy struct {
	ln       net.Listener
	target   string
	cutAfter int64
	sent     atomic.Int64
	down     atomic.Bool
	cutOnce  sync.Once
	onCut    func()
	mu       sync.Mutex
	conns    map[net.Conn]bool
}

func newFaultProxy(t *testing.T, target string, cutAfter int64, onCut func()) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{ln: ln, target: target, cutAfter: cutAfter, onCut: onCut, conns: map[net.Conn]bool{}}
	t.Cleanup(func() { ln.Close(); p.dropAll() })
	go p.serve()
	return p
}

func (p *faultProxy) URL() string { return "http://" + p.ln.Addr().String() }

func (p *faultProxy) dropAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
	p.conns = map[net.Conn]bool{}
}

func (p *faultProxy) track(c net.Conn) {
	p.mu.Lock()
	p.conns[c] = true
	p.mu.Unlock()
}

func (p *faultProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if p.down.Load() {
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.track(c)
		p.track(up)
		go func() { io.Copy(c, up); c.Close() }()
		go func() {
			buf := make([]byte, 32<<10)
			for {
				n, err := c.Read(buf)
				if n > 0 {
					if p.sent.Add(int64(n)) > p.cutAfter && p.cutAfter > 0 {
						p.cutOnce.Do(func() {
							p.down.Store(true)
							p.dropAll()
							if p.onCut != nil {
								go p.onCut()
							}
						})
					}
					if p.down.Load() {
						break
					}
					if _, werr := up.Write(buf[:n]); werr != nil {
						break
					}
				}
				if err != nil {
					break
				}
			}
			up.Close()
			c.Close()
		}()
	}
}

// TestS3FailureMidUpload cuts the connection to S3 (or interrupts the run)
// while a multipart upload is under way and checks that no backup looks
// complete and no multipart upload is left open.
func TestS3FailureMidUpload(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	app := e.db("big")
	e.dropDBs(app)
	db := sqlDB(t, e.primary)
	// ~16 MB of incompressible rows: several 5 MiB parts.
	mustExec(t, db, "CREATE DATABASE "+quoteID(app),
		"CREATE TABLE "+quoteID(app)+".blobs (id INT PRIMARY KEY, data LONGBLOB)",
		"INSERT INTO "+quoteID(app)+".blobs SELECT seq, RANDOM_BYTES(1024) FROM "+quoteID(app)+".seq_1_to_16000")

	for _, tc := range []struct {
		name string
		// restore brings S3 back after this long (0: interrupt instead).
		downFor time.Duration
		// staysDown: S3 is still down when create gives up; the next
		// prune aborts the leftover upload.
		staysDown bool
	}{
		{name: "S3 down then back", downFor: 2 * time.Second},
		{name: "S3 down until prune", staysDown: true},
		{name: "interrupted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, direct := s3Env(t)
			cctx, cancel := context.WithCancel(ctx)
			defer cancel()
			var proxy *faultProxy
			proxy = newFaultProxy(t, strings.TrimPrefix(cfg.Endpoint, "http://"), 7<<20, func() {
				switch {
				case tc.downFor > 0:
					time.Sleep(tc.downFor)
					proxy.down.Store(false)
				case tc.staysDown:
				default:
					proxy.down.Store(false)
					cancel()
				}
			})
			pc := cfg
			pc.Endpoint, pc.MaxAttempts, pc.AbortTimeout = proxy.URL(), 1, 10*time.Second
			if tc.staysDown {
				pc.AbortTimeout = time.Second
			}
			my := e.primary
			my.Databases = []string{app}
			c := Common{S3: pc, Logger: testLogger(t)}
			_, err := Create(cctx, CreateOptions{Common: c, Site: "primary", MySQL: my, Compression: CompressGzip, CompressionLevel: 1})
			if err == nil {
				t.Fatal("create succeeded through a failing S3")
			}
			t.Logf("create failed as expected: %v", err)
			if strings.Contains(err.Error()+logsOf(t), cfg.SecretKey.Reveal()) {
				t.Error("the S3 secret key appears in the error or the logs")
			}
			if tc.name == "interrupted" && !errors.Is(err, context.Canceled) {
				t.Errorf("error %v is not context.Canceled", err)
			}
			proxy.down.Store(false)
			entries, lerr := catalog(ctx, direct, cfg.Prefix)
			if lerr != nil {
				t.Fatal(lerr)
			}
			for _, en := range entries {
				if en.Complete {
					t.Errorf("backup %s looks complete after a failed create", en.ID)
				}
			}
			ups, lerr := direct.ListUploads(ctx, cfg.Prefix)
			if lerr != nil {
				t.Fatal(lerr)
			}
			if tc.staysDown {
				if len(ups) == 0 {
					t.Fatal("expected the upload S3 could not abort to be left open")
				}
				// The next prune (a day later) aborts it and drops the rest.
				c2 := Common{S3: cfg, Logger: testLogger(t), Now: func() time.Time { return time.Now().Add(25 * time.Hour) }}
				rep, perr := Prune(ctx, PruneOptions{Common: c2, Policy: Policy{Last: 1}})
				if perr != nil {
					t.Fatal(perr)
				}
				if rep.AbortedUploads != len(ups) {
					t.Errorf("prune aborted %d uploads, want %d", rep.AbortedUploads, len(ups))
				}
				if ups, lerr = direct.ListUploads(ctx, cfg.Prefix); lerr != nil {
					t.Fatal(lerr)
				}
			}
			if len(ups) != 0 {
				t.Errorf("multipart uploads left open: %+v", ups)
			}
			if !tc.staysDown {
				objs, _ := direct.List(ctx, cfg.Prefix)
				if len(objs) != 0 {
					t.Errorf("objects left after a failed create: %+v", objs)
				}
			}
		})
	}
}
