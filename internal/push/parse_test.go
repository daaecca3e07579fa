package push

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/slipwayci/slipway/internal/usererr"
)

// wantError checks err against want, a part of the message ("": no
// error), and that a bad input is a user error; it reports whether the
// test goes on to check the result.
func wantError(t *testing.T, err error, want string) bool {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatal(err)
	case want == "":
		return true
	case err == nil || !strings.Contains(err.Error(), want):
		t.Fatalf("err = %v, want it to contain %q", err, want)
	case !usererr.Is(err):
		t.Errorf("err is not bad input: %v", err)
	}
	return false
}

// parseCase is a row of a parser's table test: in parses to want, or fails
// with a user error containing wantErr.
type parseCase[T any] struct {
	name, in string
	want     T
	wantErr  string
}

// testParse runs a parser's table; a case without a name is named by its
// input. parse gets the case's t for checks of its own.
func testParse[T any](t *testing.T, tests []parseCase[T], parse func(t *testing.T, in string) (T, error), opts ...cmp.Option) {
	t.Helper()
	for _, tt := range tests {
		name := tt.name
		if name == "" {
			name = tt.in
		}
		t.Run(name, func(t *testing.T) {
			got, err := parse(t, tt.in)
			if !wantError(t, err, tt.wantErr) {
				return
			}
			if diff := cmp.Diff(tt.want, got, opts...); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseRegion(t *testing.T) {
	tests := []parseCase[Region]{
		{name: "host and port", in: "a=127.0.0.1:5000", want: Region{Name: "a", Registry: "127.0.0.1:5000"}},
		{name: "namespace", in: "regionone=registry.a.example:5000/acme/prod", want: Region{Name: "regionone", Registry: "registry.a.example:5000", Namespace: "acme/prod"}},
		{name: "trailing slash", in: "b=reg.example/acme/", want: Region{Name: "b", Registry: "reg.example", Namespace: "acme"}},
		{name: "no name", in: "127.0.0.1:5000", wantErr: `"127.0.0.1:5000": want name=host`},
		{name: "empty target", in: "a=", wantErr: "want name=host"},
		{name: "scheme", in: "a=https://reg.example", wantErr: "without a scheme"},
		{name: "bad name", in: "A B=reg.example", wantErr: `region name "A B"`},
		{name: "bad namespace", in: "a=reg.example/Acme", wantErr: `namespace "Acme"`},
		{name: "bad host", in: "a=reg example:5000", wantErr: "not a valid host"},
	}
	testParse(t, tests, func(_ *testing.T, in string) (Region, error) { return ParseRegion(in) }, cmpopts.IgnoreUnexported(Region{}))
}

func TestParseTargets(t *testing.T) {
	tests := []parseCase[[]Region]{
		{
			name: "two regions",
			in:   "regions:\n  - name: a\n    registry: reg.a:5000\n    namespace: acme\n  - name: b\n    registry: reg.b:5000\n    insecure: true\n",
			want: []Region{{Name: "a", Registry: "reg.a:5000", Namespace: "acme"}, {Name: "b", Registry: "reg.b:5000", Insecure: true}},
		},
		{name: "unknown field", in: "regions:\n  - name: a\n    registry: reg.a\n    pasword: x\n", wantErr: "targets.yaml:4: regions[0].pasword: unknown field"},
		{name: "bad region on its line", in: "regions:\n  - name: a\n    registry: reg.a\n  - name: b\n    registry: https://reg.b\n", wantErr: "targets.yaml:5: regions[1].registry: registry \"https://reg.b\""},
		{name: "duplicate", in: "regions:\n  - {name: a, registry: r1}\n  - {name: a, registry: r2}\n", wantErr: `targets.yaml:3: regions[1].name: region name "a" is used twice`},
		{name: "empty", in: "", wantErr: "empty"},
		{name: "no regions", in: "regions: []\n", wantErr: "no regions"},
		{name: "not yaml", in: "regions: [\n", wantErr: "targets.yaml:"},
		{name: "wrong type", in: "regions:\n  - name: a\n    insecure: maybe\n", wantErr: "targets.yaml:3:"},
		{
			name: "storage-backed region as Magnum writes it",
			in: "regions:\n  - name: a\n    registry: reg.a:5000\n  - name: b\n    namespace: acme\n    swift:\n      authurl: https://keystone.b:5000/v3\n      region: RegionTwo\n" +
				"      container: docker_registry\n      username: trustee\n      domainid: d0\n      chunksize: 5242880\n      insecureskipverify: true\n",
			want: []Region{{Name: "a", Registry: "reg.a:5000"}, {Name: "b", Namespace: "acme", Swift: &Swift{
				AuthURL: "https://keystone.b:5000/v3", Region: "RegionTwo", Container: "docker_registry", Username: "trustee", DomainID: "d0", ChunkSize: 5242880, InsecureSkipVerify: true}}},
		},
		{name: "node registry", in: "regions:\n  - {name: a, registry: reg.a:5000, nodeRegistry: 'reg-a.internal:5000'}\n",
			want: []Region{{Name: "a", Registry: "reg.a:5000", NodeRegistry: "reg-a.internal:5000"}}},
	}
	testParse(t, tests, func(_ *testing.T, in string) ([]Region, error) {
		return ParseTargets(strings.NewReader(in), "targets.yaml")
	}, cmpopts.IgnoreUnexported(Region{}))
}

// TestConfigErrorFormat: every problem in a file push-registry reads (a
// targets file, a secrets vars file) reads FILE:LINE: field.path: what is
// wrong (what is allowed).
func TestConfigErrorFormat(t *testing.T) {
	const targets = "regions:\n  - name: a\n    registry: reg.a:5000\n"
	const swiftRegion = "regions:\n  - name: a\n    swift:\n"
	const secrets = "other: 1\nregistry_credentials:\n  a:\n    username: ci\n    password: pw-a-secret\n"
	parseTargets := func(in string) error { _, err := ParseTargets(strings.NewReader(in), "targets.yaml"); return err }
	parseSecrets := func(in string) error { _, err := parseSecrets(strings.NewReader(in), "secrets.yaml"); return err }
	tests := []struct {
		name  string
		parse func(string) error
		in    string
		want  string
	}{
		{"targets: unknown key", parseTargets, targets + "    caFlie: a.pem\n",
			"targets.yaml:4: regions[0].caFlie: unknown field (known: authFile, caFile, insecure, name, namespace, nodeRegistry, registry, swift)"},
		{"targets: registry and swift", parseTargets, targets + "    swift: {authurl: 'https://ks:5000/v3', container: c}\n",
			"targets.yaml:4: regions[0].swift: a region gives registry (a registry to push to) or swift (the storage of its node registries), not both"},
		{"targets: swift without auth URL", parseTargets, swiftRegion + "      container: docker_registry\n",
			"targets.yaml:3: regions[0].swift.authurl: the Keystone auth URL is empty (give e.g. https://keystone.example:5000/v3)"},
		{"targets: swift unknown key", parseTargets, swiftRegion + "      authurl: https://ks:5000/v3\n      contianer: c\n",
			"targets.yaml:5: regions[0].swift.contianer: unknown field (known: authurl, authversion, cafile, chunksize, container, domain, domainid, insecureskipverify, password, prefix, region, tenant, tenantdomain, tenantdomainid, tenantid, trustid, username)"},
		{"targets: swift password", parseTargets, swiftRegion + "      authurl: https://ks:5000/v3\n      container: c\n      password: pw-a-secret\n",
			"targets.yaml:6: regions[0].swift.password: a credential is not read from the targets file (give it as swift_credentials.a.password in the secrets file, or SLIPWAY_SWIFT_A_PASSWORD)"},
		{"targets: swift small chunks", parseTargets, swiftRegion + "      authurl: https://ks:5000/v3\n      container: c\n      chunksize: 1000\n",
			"targets.yaml:6: regions[0].swift.chunksize: 1000 is below 1048576, the smallest segment distribution accepts"},
		{"targets: swift with insecure", parseTargets, swiftRegion + "      authurl: https://ks:5000/v3\n      container: c\n    insecure: true\n",
			"targets.yaml:6: regions[0].insecure: insecure applies to a registry region; the registry of a swift region is push-registry's own (for Swift's TLS give swift.cafile or swift.insecureskipverify)"},
		{"targets: bad node registry", parseTargets, targets + "    nodeRegistry: 'http://localhost:5000'\n",
			`targets.yaml:4: regions[0].nodeRegistry: nodeRegistry "http://localhost:5000" is not a valid host[:port] (e.g. localhost:5000)`},
		{"secrets: swift unknown key", parseSecrets, "swift_credentials:\n  b:\n    username: u\n    passwd: pw-a-secret\n",
			"secrets.yaml:4: swift_credentials.b.passwd: unknown field (known: password, trustid, username)"},
		{"secrets: swift without password", parseSecrets, "swift_credentials:\n  b: {username: u, trustid: pw-a-secret}\n",
			"secrets.yaml:2: swift_credentials.b: password is empty (give username, password and, for a Magnum trustee, trustid)"},
		{"targets: wrong type", parseTargets, targets + "    insecure: maybe\n",
			`targets.yaml:4: regions[0].insecure: must be true or false, not "maybe"`},
		{"targets: bad value", parseTargets, targets + "    namespace: Acme\n",
			`targets.yaml:4: regions[0].namespace: namespace "Acme" is not a valid repository path (lowercase letters and digits, separated by . _ - or /)`},
		{"targets: repeated key", parseTargets, targets + "    registry: reg.b\n",
			"targets.yaml:4: regions[0].registry: given twice"},
		{"secrets: unknown key", parseSecrets, secrets + "    pasword: x\n",
			"secrets.yaml:6: registry_credentials.a.pasword: unknown field (known: password, token, username)"},
		{"secrets: wrong type", parseSecrets, secrets + "  b: [pw-a-secret]\n",
			"secrets.yaml:6: registry_credentials.b: must be a mapping of username, password or token (the value is not shown: it may be a secret)"},
		{"secrets: bad value", parseSecrets, secrets + "  b: {password: pw-a-secret}\n",
			"secrets.yaml:6: registry_credentials.b: username is empty (give username and password, or a token)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.parse(tt.in)
			if err == nil {
				t.Fatal("no error")
			}
			if diff := cmp.Diff(tt.want, err.Error()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if !usererr.Is(err) {
				t.Errorf("not a user error: %v", err)
			}
		})
	}
}

// FuzzParseTargets: any input gives regions that validate, or a bad-input
// error; never a panic.
func FuzzParseTargets(f *testing.F) {
	f.Add("regions:\n  - name: a\n    registry: reg.a:5000\n")
	f.Add("regions:\n  - {name: b, registry: 'x:1', namespace: a/b, caFile: c}\n")
	f.Add("regions: [{name: a}]\n")
	f.Add("regions:\n  - name: b\n    nodeRegistry: localhost:5000\n    swift: {authurl: 'https://ks:5000/v3', container: c, chunksize: 5242880, username: u}\n")
	f.Add("- a\n")
	f.Fuzz(func(t *testing.T, in string) {
		regions, err := ParseTargets(strings.NewReader(in), "f.yaml")
		if err != nil {
			if !usererr.Is(err) {
				t.Fatalf("error is not bad input: %v", err)
			}
			return
		}
		for _, r := range regions {
			if field, msg := r.problem(); field != "" {
				t.Fatalf("accepted an invalid region: %s: %s", field, msg)
			}
		}
	})
}

// FuzzParseSecrets: a secrets file never panics, and a password in it never
// shows up in the error.
func FuzzParseSecrets(f *testing.F) {
	f.Add("registry_credentials:\n  a: {username: u, password: hunter2hunter2}\n")
	f.Add("registry_credentials:\n  a: hunter2hunter2\n")
	f.Add("registry_credentials: [hunter2hunter2]\n")
	f.Add("registry_credentials: hunter2hunter2\n")
	f.Add("hunter2hunter2\n")
	f.Fuzz(func(t *testing.T, in string) {
		_, err := parseSecrets(strings.NewReader(in), "s.yaml")
		if err != nil && strings.Contains(in, "hunter2hunter2") && strings.Contains(err.Error(), "hunter2hunter2") {
			t.Fatalf("error shows the password: %v", err)
		}
	})
}

func TestParseSecrets(t *testing.T) {
	tests := []parseCase[map[string]string]{ // want: key → username
		{name: "by region and host", in: "other_var: 1\nregistry_credentials:\n  a: {username: ci, password: pw-a-secret}\n  reg.b:5000: {username: cb, password: pw-b-secret}\n", want: map[string]string{"a": "ci", "reg.b:5000": "cb"}},
		{name: "unknown field", in: "registry_credentials:\n  a: {user: ci, password: pw-a-secret}\n", wantErr: "registry_credentials.a.user: unknown field"},
		{name: "scalar instead of mapping", in: "registry_credentials:\n  a: pw-a-secret\n", wantErr: "registry_credentials"},
		{name: "missing variable", in: "x: 1\n", wantErr: "no registry_credentials"},
		{name: "no username", in: "registry_credentials:\n  a: {password: pw-a-secret}\n", wantErr: "registry_credentials.a: username is empty"},
		{name: "swift only", in: "swift_credentials:\n  b: {username: trustee, password: pw-a-secret, trustid: pw-trust}\n", want: map[string]string{}},
		{name: "swift scalar", in: "swift_credentials:\n  b: pw-a-secret\n", wantErr: "swift_credentials.b: must be a mapping of username, password, trustid (the value is not shown"},
	}
	testParse(t, tests, func(t *testing.T, in string) (map[string]string, error) {
		got, err := parseSecrets(strings.NewReader(in), "secrets.yaml")
		if err != nil {
			if strings.Contains(err.Error(), "pw-a-secret") {
				t.Errorf("error shows the password: %v", err)
			}
			return nil, err
		}
		users := map[string]string{}
		for k, c := range got.RegistryCredentials {
			users[k] = c.Username
			if s := fmt.Sprintf("%v %+v %#v", c, c, c); strings.Contains(s, "pw-") {
				t.Errorf("formatting a credential shows its password: %s", s)
			}
		}
		return users, nil
	})
}

func TestParseSource(t *testing.T) {
	tests := []parseCase[sourceSpec]{
		{in: "oci:/out/img", want: sourceSpec{Kind: "oci", Path: "/out/img"}},
		{in: "oci:/out/img:v1", want: sourceSpec{Kind: "oci", Path: "/out/img", Ref: "v1"}},
		{in: "oci:out@sha256:abc", want: sourceSpec{Kind: "oci", Path: "out", Ref: "sha256:abc"}},
		{in: "docker-archive:/x.tar", want: sourceSpec{Kind: "docker-archive", Path: "/x.tar"}},
		{in: "docker-archive:/x.tar:app:v1", want: sourceSpec{Kind: "docker-archive", Path: "/x.tar", Ref: "app:v1"}},
		{in: "docker://reg:5000/acme/app:v1", want: sourceSpec{Kind: "docker", Path: "reg:5000/acme/app:v1"}},
		{in: "reg:5000/acme/app@sha256:" + strings.Repeat("a", 64), want: sourceSpec{Kind: "docker", Path: "reg:5000/acme/app@sha256:" + strings.Repeat("a", 64)}},
		{in: "reg:5000/Acme/app:v1", wantErr: "not an image reference"},
		{in: "", wantErr: "empty"},
	}
	testParse(t, tests, func(_ *testing.T, in string) (sourceSpec, error) { return parseSource(in) })
}

func TestLookupDockerConfig(t *testing.T) {
	cfg := dockerConfig{Auths: map[string]dockerAuth{
		"https://reg.a:5000/v1/": {Username: "u1", Password: "p1"},
		"reg.b":                  {IdentityToken: "tok"},
	}}
	tests := []struct {
		host, user, token string
		ok                bool
	}{
		{host: "reg.a:5000", user: "u1", ok: true},
		{host: "reg.b", token: "tok", ok: true},
		{host: "reg.c"},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			c, ok := lookupDockerConfig(cfg, tt.host)
			got := []any{c.Username, c.Token.Reveal(), ok}
			if diff := cmp.Diff([]any{tt.user, tt.token, tt.ok}, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestFanOut streams one source to several in-memory uploads: all get the
// same bytes, the source is opened once, a failing upload does not stop the
// others, and a corrupt source fails every upload.
func TestFanOut(t *testing.T) {
	data := make([]byte, 3*chunkSize+123)
	_, _ = rand.Read(data)
	b := bytesBlob(data)
	opens := 0
	open := b.open
	b.open = func() (io.ReadCloser, error) { opens++; return open() }

	var mu sync.Mutex
	got := map[int][]byte{}
	collect := func(i int) uploadFunc {
		return func(_ context.Context, body io.ReadCloser) error {
			d, err := io.ReadAll(body)
			mu.Lock()
			got[i] = d
			mu.Unlock()
			return err
		}
	}
	failing := func(_ context.Context, body io.ReadCloser) error {
		_, _ = io.CopyN(io.Discard, body, 1000)
		return errors.New("registry said no")
	}
	errs := fanOut(context.Background(), b, time.Minute, time.Minute, []uploadFunc{collect(0), failing, collect(2)}, nil)
	if opens != 1 {
		t.Errorf("source opened %d times, want 1", opens)
	}
	if errs[0] != nil || errs[2] != nil || errs[1] == nil {
		t.Fatalf("errs = %v", errs)
	}
	for _, i := range []int{0, 2} {
		if !bytes.Equal(got[i], data) {
			t.Errorf("upload %d got %d bytes, differing from the source", i, len(got[i]))
		}
	}

	bad := b
	bad.open = func() (io.ReadCloser, error) {
		c := bytes.Clone(data)
		c[10] ^= 1
		return io.NopCloser(bytes.NewReader(c)), nil
	}
	errs = fanOut(context.Background(), bad, time.Minute, time.Minute, []uploadFunc{collect(0), collect(1)}, nil)
	for i, err := range errs {
		if !errors.Is(err, errSourceCorrupt) {
			t.Errorf("upload %d: err = %v, want errSourceCorrupt", i, err)
		}
	}

	stuck := func(ctx context.Context, body io.ReadCloser) error {
		<-ctx.Done()
		return ctx.Err()
	}
	errs = fanOut(context.Background(), b, 50*time.Millisecond, time.Minute, []uploadFunc{stuck, collect(1)}, nil)
	if !errors.Is(errs[0], errStalled) || errs[1] != nil {
		t.Errorf("stalled upload: errs = %v, want errStalled for 0 only", errs)
	}

	// A blob larger than the queues: the healthy upload drains its queue
	// and then waits for the source, which waits for the stuck one until
	// its upload has returned (a connection that is slow to tear down).
	// That wait is the sibling's stall, not its own.
	slowStuck := func(ctx context.Context, body io.ReadCloser) error {
		<-ctx.Done()
		time.Sleep(200 * time.Millisecond)
		return ctx.Err()
	}
	// Like an HTTP request, the healthy upload fails if its context ends.
	healthy := func(ctx context.Context, body io.ReadCloser) error {
		if err := collect(1)(ctx, body); err != nil {
			return err
		}
		return ctx.Err()
	}
	big := make([]byte, 4*queueDepth*chunkSize)
	_, _ = rand.Read(big)
	for range 3 {
		errs = fanOut(context.Background(), bytesBlob(big), 50*time.Millisecond, time.Minute, []uploadFunc{slowStuck, healthy}, nil)
		if !errors.Is(errs[0], errStalled) || errs[1] != nil {
			t.Fatalf("stalled sibling, large blob: errs = %v, want errStalled for 0 only", errs)
		}
		if !bytes.Equal(got[1], big) {
			t.Fatalf("healthy upload got %d bytes, differing from the source", len(got[1]))
		}
	}
}
