package backup

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/google/go-cmp/cmp"

	"github.com/slipwayci/slipway/internal/usererr"
)

func ageKey(t *testing.T) (recipient, identityFile string) {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "identity.txt")
	if err := os.WriteFile(p, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return id.Recipient().String(), p
}

// TestRoundTrip backs up two MariaDB databases (~100k rows, BLOBs, unicode,
// trigger/view/routines/event) and a FerretDB database, restores them into
// the DR servers over older data, and compares every table and document.
func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name        string
		compression string
		encrypt     bool
	}{
		{"zstd+age", CompressZstd, true},
		{"gzip", CompressGzip, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.compression == CompressGzip && testing.Short() {
				t.Skip("second variant skipped in -short")
			}
			ctx := context.Background()
			e := newEnv(t)
			app1, app2, shop := e.db("app1"), e.db("app2"), e.db("shop")
			e.dropDBs(app1, app2, shop)
			rows := 100_000
			if tc.compression == CompressGzip {
				rows = 20_000
			}
			seedMySQL(t, e.primary, app1, app2, rows)
			seedMongo(t, e.mongoP, shop, 5000)
			// The DR site holds older data, with a table and a collection
			// the backup does not have: the restore replaces all of it.
			drDB := sqlDB(t, e.dr)
			mustExec(t, drDB, "CREATE DATABASE "+quoteID(app1),
				"CREATE TABLE "+quoteID(app1)+".users (id INT PRIMARY KEY, name TEXT)",
				"INSERT INTO "+quoteID(app1)+".users VALUES (1, 'stale')",
				"CREATE TABLE "+quoteID(app1)+".obsolete (id INT)",
				"CREATE TRIGGER "+quoteID(app1)+".old_trg BEFORE INSERT ON "+quoteID(app1)+".users FOR EACH ROW SET NEW.name = UPPER(NEW.name)")
			seedMongo(t, e.mongoD, shop, 10)
			mongoClient(t, e.mongoD).Database(shop).Collection("obsolete").InsertOne(ctx, map[string]any{"x": 1})

			var recipients, identities []string
			if tc.encrypt {
				r, idf := ageKey(t)
				recipients, identities = []string{r}, []string{idf}
			}
			my, mg := e.primary, e.mongoP
			my.Databases, mg.Databases = []string{app1, app2}, []string{shop}
			m, err := Create(ctx, CreateOptions{Common: e.common(), Site: "primary", MySQL: my, Mongo: mg,
				Compression: tc.compression, AgeRecipients: recipients})
			if err != nil {
				t.Fatal(err)
			}
			if len(m.Dumps) != 3 {
				t.Fatalf("manifest has %d dumps, want 3", len(m.Dumps))
			}
			for _, d := range m.Dumps {
				if wantSuffix := suffix(tc.compression, tc.encrypt); !strings.HasSuffix(d.Key, wantSuffix) {
					t.Errorf("dump key %s does not end in %s", d.Key, wantSuffix)
				}
				if d.RawSize == 0 || d.Size == 0 {
					t.Errorf("dump %s is empty: %+v", d.Key, d)
				}
			}
			if m.Encryption == "age" {
				// The stored bytes must not contain plaintext from the dump.
				rc, err := e.store.Get(ctx, m.Dumps[0].Key)
				if err != nil {
					t.Fatal(err)
				}
				var buf strings.Builder
				_, _ = ioCopyN(&buf, rc, 1<<20)
				rc.Close()
				if strings.Contains(buf.String(), "CREATE TABLE") || !strings.HasPrefix(buf.String(), "age-encryption.org/v1") {
					t.Errorf("encrypted object does not look like an age file: %q", buf.String()[:40])
				}
			}

			if _, err := Verify(ctx, VerifyOptions{Common: e.common(), ID: m.ID, AgeIdentityFiles: identities}); err != nil {
				t.Fatalf("verify: %v", err)
			}
			if tc.encrypt {
				// Without the key only the stored checksums can be checked;
				// with another key nothing decrypts; restore needs the key.
				if _, err := Verify(ctx, VerifyOptions{Common: e.common(), Latest: true}); err != nil {
					t.Errorf("verify without identity: %v", err)
				}
				_, other := ageKey(t)
				if _, err := Verify(ctx, VerifyOptions{Common: e.common(), Latest: true, AgeIdentityFiles: []string{other}}); err == nil {
					t.Error("verify with the wrong identity passed")
				}
				if _, err := Restore(ctx, RestoreOptions{Common: e.common(), Latest: true, MySQL: e.dr, Mongo: e.mongoD}); !usererr.Is(err) {
					t.Errorf("restore of an encrypted backup without identity: %v, want a usage error", err)
				}
			}

			wantMy := mysqlState(t, e.primary, app1, app2)
			wantMg := mongoState(t, e.mongoP, shop)
			dr, drm := e.dr, e.mongoD
			rep, err := Restore(ctx, RestoreOptions{Common: e.common(), Latest: true, MySQL: dr, Mongo: drm, AgeIdentityFiles: identities})
			if err != nil {
				t.Fatalf("restore: %v", err)
			}
			if rep.Manifest.ID != m.ID {
				t.Errorf("restored %s, want %s", rep.Manifest.ID, m.ID)
			}
			gotMy := mysqlState(t, e.dr, app1, app2)
			if diff := cmp.Diff(wantMy, gotMy); diff != "" {
				t.Errorf("MySQL at DR differs from primary (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(wantMg, mongoState(t, e.mongoD, shop)); diff != "" {
				t.Errorf("MongoDB at DR differs from primary (-want +got):\n%s", diff)
			}
			// The restored routines work.
			var n int
			if err := drDB.QueryRow("SELECT " + quoteID(app2) + ".double_it(21)").Scan(&n); err != nil || n != 42 {
				t.Errorf("restored function: %d, %v", n, err)
			}
			if _, err := drDB.Exec("INSERT INTO " + quoteID(app1) + ".users (id, name) VALUES (999999999, 'new')"); err != nil {
				t.Fatal(err)
			}
			var audits int
			drDB.QueryRow("SELECT COUNT(*) FROM " + quoteID(app1) + ".audit WHERE user_id = 999999999").Scan(&audits)
			if audits != 1 {
				t.Errorf("restored trigger wrote %d audit rows, want 1", audits)
			}
		})
	}
}

// TestCreateConcurrent checks that create dumps a MySQL and a MongoDB
// database at the same time, each into its own object: each dump starts
// before the other ends (by the log's times).
func TestCreateConcurrent(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	app1, _, shop := e.seed(20000, 3000, 10, 5)
	my, mg := e.primary, e.mongoP
	my.Databases, mg.Databases = []string{app1}, []string{shop}
	m, err := Create(ctx, CreateOptions{Common: e.common(), Site: "primary", MySQL: my, Mongo: mg, Jobs: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Dumps) != 2 || m.Dumps[0].Kind != KindMySQL || m.Dumps[1].Kind != KindMongo {
		t.Fatalf("dumps %+v, want MySQL then MongoDB (the order given)", m.Dumps)
	}
	times := map[string]time.Time{}
	for line := range strings.Lines(logsOf(t)) {
		var l struct {
			Time      time.Time
			Msg, Kind string
		}
		if json.Unmarshal([]byte(line), &l) == nil && (l.Msg == "dumping" || l.Msg == "dumped") {
			times[l.Msg+" "+l.Kind] = l.Time
		}
	}
	if len(times) != 4 {
		t.Fatalf("log times %v", times)
	}
	if !times["dumping mongo"].Before(times["dumped mysql"]) || !times["dumping mysql"].Before(times["dumped mongo"]) {
		t.Errorf("the dumps did not overlap: %v", times)
	}
}
