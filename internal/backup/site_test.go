package backup

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/slipwayci/slipway/internal/usererr"
)

// TestStatusSite checks status --site dr, the failover's preflight, through
// the DR site's life: no restore yet, a restore that succeeded, a restore
// that failed, a restore interrupted, and a restore running; each problem
// is named with what to do, and a good site passes.
func TestStatusSite(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	app, shop := e.db("site"), e.db("siteshop")
	e.dropDBs(app, shop)
	t.Cleanup(func() {
		if db, err := e.dr.open(); err == nil {
			db.Exec("DELETE FROM "+quoteID(journalDB)+".outcome WHERE db = ?", app)
			db.Close()
		}
		if c, err := connectMongo(ctx, e.mongoD); err == nil {
			mongoJournal{c}.outcomes().DeleteOne(ctx, bson.D{{Key: "_id", Value: shop}})
			c.Disconnect(ctx)
		}
	})
	mustExec(t, sqlDB(t, e.primary), "CREATE DATABASE "+quoteID(app), "CREATE TABLE "+quoteID(app)+".t (id INT PRIMARY KEY)", "INSERT INTO "+quoteID(app)+".t VALUES (1), (2)")
	seedMongo(t, e.mongoP, shop, 20)
	my, mg := e.primary, e.mongoP
	my.Databases, mg.Databases = []string{app}, []string{shop}
	m, err := Create(ctx, CreateOptions{Common: e.common(), Site: "primary", MySQL: my, Mongo: mg})
	if err != nil {
		t.Fatal(err)
	}
	status := func() (*Status, error) {
		return GetStatus(ctx, StatusOptions{Common: e.common(), MaxAge: time.Hour, Site: "dr", MySQL: e.dr, Mongo: e.mongoD})
	}
	notReady := func(wants ...string) {
		t.Helper()
		st, err := status()
		if !errors.Is(err, ErrNotReady) || st == nil || !st.Stale {
			t.Fatalf("status = %+v, %v; want not ready", st, err)
		}
		for _, w := range wants {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not say %q", err, w)
			}
		}
	}
	notReady("no restore into mysql database "+app+" is recorded at site dr: run backup restore --latest there", "no restore into mongo database "+shop)

	restore := func() error {
		_, err := Restore(ctx, RestoreOptions{Common: e.common(), Latest: true, MySQL: e.dr, Mongo: e.mongoD})
		return err
	}
	if err := restore(); err != nil {
		t.Fatal(err)
	}
	st, err := status()
	if err != nil {
		t.Fatalf("status after a good restore: %v", err)
	}
	if len(st.LastRestores) != 2 || !st.LastRestores[0].OK || st.LastRestores[0].Backup != m.ID || len(st.Problems) != 0 {
		t.Fatalf("status after a good restore: %+v", st)
	}

	// A newer backup whose MySQL dump was replaced: its restore fails.
	m2, err := Create(ctx, CreateOptions{Common: e.common(), Site: "primary", MySQL: my, Mongo: mg})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.Put(ctx, m2.Dumps[0].Key, strings.NewReader("not a dump")); err != nil {
		t.Fatal(err)
	}
	if err := restore(); err == nil {
		t.Fatal("restore of a replaced dump succeeded")
	}
	notReady("the last restore of backup "+m2.ID+" into mysql database "+app+" failed at", "checksum mismatch")

	// A restore killed during the load leaves its journal entry pending.
	if err := (mysqlJournal{sqlDB(t, e.dr)}).put(ctx, journalEntry{Database: app, State: stateLoading, Backup: m2.ID, Restored: m.ID}); err != nil {
		t.Fatal(err)
	}
	notReady("the restore of backup " + m2.ID + " into mysql database " + app + " was interrupted (loading): run backup restore --latest at site dr to finish it")

	// A running restore holds the database's lock.
	lock, err := sqlDB(t, e.dr).Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if _, err := lock.ExecContext(ctx, "SELECT GET_LOCK(?, 0)", "slipway:"+app); err != nil {
		t.Fatal(err)
	}
	notReady("a restore into mysql database " + app + " is running: wait for it to finish")
	lock.ExecContext(ctx, "SELECT RELEASE_LOCK(?)", "slipway:"+app)

	// Once a restore of a good backup finishes, the site is ready again.
	m3, err := Create(ctx, CreateOptions{Common: e.common(), Site: "primary", MySQL: my, Mongo: mg})
	if err != nil {
		t.Fatal(err)
	}
	if err := restore(); err != nil {
		t.Fatal(err)
	}
	if st, err := status(); err != nil || st.LastRestores[0].Backup != m3.ID {
		t.Fatalf("status after the next good restore: %+v, %v", st, err)
	}

	// Without the site's servers: a user error, nothing read.
	if _, err := GetStatus(ctx, StatusOptions{Common: e.common(), MaxAge: time.Hour, Site: "dr"}); !usererr.Is(err) {
		t.Fatalf("status --site without servers: %v, want a user error", err)
	}
	if _, err := GetStatus(ctx, StatusOptions{Common: e.common(), MaxAge: time.Hour, Site: "dr", Mongo: e.mongoD}); !usererr.Is(err) || !strings.Contains(err.Error(), "MySQL database "+app) {
		t.Fatalf("status --site without the MySQL server: %v, want a user error naming the database", err)
	}
}
