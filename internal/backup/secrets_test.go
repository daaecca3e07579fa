package backup

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/slipwayci/slipway/internal/logging"
)

// passwordUser creates a user with a random password (quotes, backslash,
// '#' and spaces in it, which the option file must carry) and every
// privilege on the server of c; it is dropped when the test ends.
func passwordUser(t *testing.T, c MySQLConfig) MySQLConfig {
	t.Helper()
	name := "slipway_pw_" + randHex(3)
	pw := "p\"w\\ #'x " + randHex(12)
	db := sqlDB(t, c)
	mustExec(t, db, "CREATE USER '"+name+"'@'%' IDENTIFIED BY '"+strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(pw)+"'",
		"GRANT ALL PRIVILEGES ON *.* TO '"+name+"'@'%'")
	t.Cleanup(func() {
		if db, err := c.open(); err == nil {
			db.Exec("DROP USER IF EXISTS '" + name + "'@'%'")
			db.Close()
		}
	})
	c.User, c.Password = name, logging.Secret(pw)
	logging.Register(pw)
	return c
}

// procSampler reads /proc/PID/cmdline and /proc/PID/environ of this
// process's children as often as it can, and counts those that hold any
// of the secrets.
type procSampler struct {
	secrets [][]byte
	stop    chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	seen    map[string]int // child's command name -> samples
	hits    []string
}

func sampleChildren(secrets ...string) *procSampler {
	s := &procSampler{stop: make(chan struct{}), done: make(chan struct{}), seen: map[string]int{}}
	for _, v := range secrets {
		s.secrets = append(s.secrets, []byte(v))
	}
	me := strconv.Itoa(os.Getpid())
	// A child between fork and exec is still this program (its memory,
	// its environment): it is not the child's own.
	self, _ := os.ReadFile("/proc/self/comm")
	selfComm := strings.TrimSpace(string(self))
	go func() {
		defer close(s.done)
		for {
			select {
			case <-s.stop:
				return
			default:
			}
			dirs, _ := filepath.Glob("/proc/[0-9]*")
			for _, d := range dirs {
				stat, err := os.ReadFile(d + "/stat")
				if err != nil {
					continue
				}
				i := bytes.LastIndexByte(stat, ')')
				f := strings.Fields(string(stat[i+1:]))
				if i < 0 || len(f) < 2 || f[1] != me {
					continue
				}
				comm := string(stat[bytes.IndexByte(stat, '(')+1 : i])
				if comm == selfComm {
					continue
				}
				cmdline, _ := os.ReadFile(d + "/cmdline")
				environ, _ := os.ReadFile(d + "/environ")
				s.mu.Lock()
				s.seen[comm]++
				for i, sec := range s.secrets {
					if bytes.Contains(cmdline, sec) {
						s.hits = append(s.hits, comm+" argv (secret "+strconv.Itoa(i)+")")
					}
					if bytes.Contains(environ, sec) {
						s.hits = append(s.hits, comm+" environ (secret "+strconv.Itoa(i)+")")
					}
				}
				s.mu.Unlock()
			}
		}
	}()
	return s
}

func (s *procSampler) finish() (seen map[string]int, hits []string) {
	close(s.stop)
	<-s.done
	return s.seen, s.hits
}

// TestNoSecretInChildren runs a create and a restore as MySQL users with
// passwords, with the secrets also in this process's environment (as a
// CronJob gives them), while sampling the children's argv and environment:
// no sample may hold a password or the S3 secret key.
func TestNoSecretInChildren(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	app1, app2 := e.db("app1"), e.db("app2")
	e.dropDBs(app1, app2)
	seedMySQL(t, e.primary, app1, app2, 20_000)
	primary, dr := passwordUser(t, e.primary), passwordUser(t, e.dr)
	t.Setenv("SLIPWAY_MYSQL_PASSWORD", primary.Password.Reveal())
	t.Setenv("AWS_SECRET_ACCESS_KEY", e.s3.SecretKey.Reveal())
	t.Setenv("SLIPWAY_TEST_OTHER_NAME", dr.Password.Reveal())
	// The command registers every secret it reads (bind), which keeps the
	// test env's own SLIPWAY_TEST_S3_SECRET_KEY out of children too.
	logging.Register(e.s3.SecretKey.Reveal())
	secrets := []string{primary.Password.Reveal(), dr.Password.Reveal(), e.s3.SecretKey.Reveal()}

	s := sampleChildren(secrets...)
	primary.Databases = []string{app1, app2}
	m, err := Create(ctx, CreateOptions{Common: e.common(), Site: "primary", MySQL: primary})
	if err == nil {
		_, err = Restore(ctx, RestoreOptions{Common: e.common(), ID: m.ID, MySQL: dr, Jobs: 2})
	}
	seen, hits := s.finish()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("child samples: %v", seen)
	// The sampler must have seen both tools at work, or it proves nothing.
	if seen["mariadb-dump"] == 0 || seen["mariadb"] == 0 {
		t.Fatalf("the sampler saw no mariadb-dump or no mariadb child (%v): it checked nothing", seen)
	}
	if len(hits) > 0 {
		t.Fatalf("a secret was in the argv or environment of %d child samples: %v", len(hits), hits)
	}
	if got := mysqlState(t, e.dr, app1, app2); len(got) == 0 {
		t.Fatal("nothing restored")
	}
}

// TestClientConfigQuoting: the option file carries any password to the
// client as the server knows it.
func TestClientConfigQuoting(t *testing.T) {
	for _, tc := range []struct{ name, pw, want string }{
		{"empty", "", "[client]\n"},
		{"plain", "abc", "[client]\npassword=\"abc\"\n"},
		{"quotes and backslash", `a"b\c`, "[client]\npassword=\"a\\\"b\\\\c\"\n"},
		{"comment chars and spaces", " #x; ", "[client]\npassword=\" #x; \"\n"},
		{"newline", "a\nb", "[client]\npassword=\"a\\nb\"\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(MySQLConfig{Password: logging.Secret(tc.pw)}.clientConfig()); got != tc.want {
				t.Fatalf("clientConfig = %q, want %q", got, tc.want)
			}
		})
	}
}
