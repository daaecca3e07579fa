package backup

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestSwapRollback fails restores in the middle of the swap (after MySQL's
// RENAME TABLE, after a MongoDB collection rename, and in the last database
// after the others were swapped) and checks that every DR database is rolled
// back to exactly what it was.
func TestSwapRollback(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	app1, app2, shop := e.seed(3000, 300, 500, 30)
	my, mg := e.primary, e.mongoP
	my.Databases, mg.Databases = []string{app1, app2}, []string{shop}
	if _, err := Create(ctx, CreateOptions{Common: e.common(), Site: "primary", MySQL: my, Mongo: mg}); err != nil {
		t.Fatal(err)
	}
	injected := errors.New("injected fault")
	for _, at := range []string{"mysql swap " + app1, "mysql swap " + app2, "mongo swap " + shop} {
		t.Run(at, func(t *testing.T) {
			beforeMy := mysqlState(t, e.dr, app1, app2)
			beforeMg := mongoState(t, e.mongoD, shop)
			faultHook = func(where string) error {
				if where == at {
					return injected
				}
				return nil
			}
			defer func() { faultHook = func(string) error { return nil } }()
			_, err := Restore(ctx, RestoreOptions{Common: e.common(), Latest: true, MySQL: e.dr, Mongo: e.mongoD})
			if !errors.Is(err, injected) || !strings.Contains(err.Error(), "rolled back") {
				t.Fatalf("restore error %v, want the injected fault, rolled back", err)
			}
			if diff := cmp.Diff(beforeMy, mysqlState(t, e.dr, app1, app2)); diff != "" {
				t.Errorf("DR MySQL not rolled back (-before +after):\n%s", diff)
			}
			if diff := cmp.Diff(beforeMg, mongoState(t, e.mongoD, shop)); diff != "" {
				t.Errorf("DR MongoDB not rolled back (-before +after):\n%s", diff)
			}
		})
	}
	// Without a fault the same backup restores.
	if _, err := Restore(ctx, RestoreOptions{Common: e.common(), Latest: true, MySQL: e.dr, Mongo: e.mongoD}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(mysqlState(t, e.primary, app1, app2), mysqlState(t, e.dr, app1, app2)); diff != "" {
		t.Errorf("after a clean restore (-primary +dr):\n%s", diff)
	}
}
