package buildimage

import (
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/slipwayci/slipway/internal/config"
	"github.com/slipwayci/slipway/internal/logging"
	"github.com/slipwayci/slipway/internal/zuul"
)

// Label keys build-image sets on every image.
const (
	LabelSource    = "org.opencontainers.image.source"
	LabelRevision  = "org.opencontainers.image.revision"
	LabelCreated   = "org.opencontainers.image.created"
	LabelChangeURL = "org.zuul-ci.change_url"
)

var (
	imageNameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)
	// repoRe is the distribution spec's repository name, path components only.
	repoRe   = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$`)
	tagRe    = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	argRe    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	envKey   = regexp.MustCompile(`^[^=\x00]+$`)
	varRefRe = regexp.MustCompile(`\$\{([^}]*)\}`)
)

// Planned is an image ready to build: validated, with its final tags,
// labels and build args.
type Planned struct {
	*Image
	// Tags are the tags the image gets in its layout and result.
	Tags []string
	// Labels are the image's labels, standard ones included.
	Labels map[string]string
	// BuildArgs are the build file's args, the image's own, then the
	// command line's, in that order of precedence.
	BuildArgs map[string]string
	// Base is the native base reference after ${NAME} expansion.
	Base string
	// Created is the creation time written into the image.
	Created time.Time
	// SecretValues holds the values of env secrets, by secret ID.
	SecretValues map[string]logging.Secret
}

// PlanOptions are the inputs of Plan besides the file.
type PlanOptions struct {
	Zuul *zuul.Context
	// Args override build args of every image (the command line's).
	Args map[string]string
	// Epoch is SOURCE_DATE_EPOCH; nil means now.
	Epoch *time.Time
	// Now is the wall clock, used when Epoch is nil.
	Now time.Time
	// LookupEnv reads the environment variables secrets name
	// (os.LookupEnv in the binary; nil means none is set).
	LookupEnv func(string) (string, bool)
}

// Plan validates f entirely (paths, names, tags, dependencies) and returns
// its images in build order: every image after the images it depends on. It
// builds nothing, so bad input is reported before any work.
func Plan(f *File, o PlanOptions) ([]*Planned, error) {
	z := o.Zuul
	if z == nil {
		z = &zuul.Context{}
	}
	if dir, err := filepath.Abs(f.Dir); err == nil {
		f.Dir = dir
	}
	created := o.Now.UTC()
	if o.Epoch != nil {
		created = o.Epoch.UTC()
	}
	for _, field := range []struct{ name, tmpl string }{{"tags.change", f.Tags.Change}, {"tags.commit", f.Tags.Commit}} {
		if field.tmpl == "" {
			return nil, f.doc.Errorf(field.name, "must not be empty")
		}
	}
	for k := range f.Args {
		if !argRe.MatchString(k) {
			return nil, f.doc.Errorf("args."+k, "%q is not a valid build arg name", k)
		}
	}
	for k := range o.Args {
		if !argRe.MatchString(k) {
			// Not from the file: the command names what gave it.
			return nil, &config.Error{Field: "build_args." + k, Msg: fmt.Sprintf("%q is not a valid build arg name", k)}
		}
	}
	byName := map[string]*Image{}
	var plans []*Planned
	for _, im := range f.Images {
		if !imageNameRe.MatchString(im.Name) {
			return nil, f.doc.Errorf(im.field("name"), "%q is not a valid image name (lowercase letters, digits, '.', '_', '-')", im.Name)
		}
		if prev, dup := byName[im.Name]; dup {
			return nil, f.doc.Errorf(im.field("name"), "%q is already the name of %s", im.Name, prev.field(""))
		}
		byName[im.Name] = im
		p, err := planImage(f, im, z, o, created)
		if err != nil {
			return nil, err
		}
		plans = append(plans, p)
	}
	return order(f, plans, byName)
}

func planImage(f *File, im *Image, z *zuul.Context, o PlanOptions, created time.Time) (*Planned, error) {
	p := &Planned{Image: im, Created: created}
	if im.Repository == "" {
		im.Repository = im.Name
	}
	// A first component with '.' or ':' (or localhost) would be read as a
	// registry host, as in Docker references.
	first, _, nested := strings.Cut(im.Repository, "/")
	hostLike := nested && (strings.ContainsAny(first, ".:") || first == "localhost")
	if hostLike || !repoRe.MatchString(im.Repository) {
		return nil, f.doc.Errorf(im.field("repository"), "%q is not a valid repository (lowercase path like acme/openedx, no registry host or tag)", im.Repository)
	}
	if err := resolvePaths(f, im); err != nil {
		return nil, err
	}
	// Build args: file, image, then the command line.
	p.BuildArgs = map[string]string{}
	for k, v := range f.Args {
		p.BuildArgs[k] = v
	}
	for k, v := range im.BuildArgs {
		if !argRe.MatchString(k) {
			return nil, f.doc.Errorf(im.field("build_args."+k), "%q is not a valid build arg name", k)
		}
		p.BuildArgs[k] = v
	}
	for k, v := range o.Args {
		p.BuildArgs[k] = v
	}
	if im.Native != nil {
		if err := planNative(f, im, p); err != nil {
			return nil, err
		}
	}
	tags, err := tagsFor(f, im, z)
	if err != nil {
		return nil, err
	}
	p.Tags = tags
	p.Labels = standardLabels(f, z, created)
	for k, v := range im.Labels {
		if k == "" {
			return nil, f.doc.Errorf(im.field("labels"), "empty label key")
		}
		p.Labels[k] = v
	}
	for _, d := range im.DependsOn {
		if d == "" {
			return nil, f.doc.Errorf(im.field("depends_on"), "empty image name")
		}
	}
	if err := planSecrets(f, im, p, o.LookupEnv); err != nil {
		return nil, err
	}
	return p, nil
}

var secretIDRe = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

func planSecrets(f *File, im *Image, p *Planned, lookup func(string) (string, bool)) error {
	if len(im.Secrets) > 0 && im.Native != nil {
		return f.doc.Errorf(im.field("secrets"), "native images run no RUN steps: remove `secrets`")
	}
	seen := map[string]bool{}
	for i, s := range im.Secrets {
		field := im.field(fmt.Sprintf("secrets[%d]", i))
		sub := func(k string) string { return im.field(fmt.Sprintf("secrets[%d].%s", i, k)) }
		if !secretIDRe.MatchString(s.ID) {
			return f.doc.Errorf(sub("id"), "%q is not a valid secret id (letters, digits, '_', '.', '-')", s.ID)
		}
		if seen[s.ID] {
			return f.doc.Errorf(sub("id"), "%q is already the id of another secret", s.ID)
		}
		seen[s.ID] = true
		switch {
		case (s.Env == "") == (s.File == ""):
			return f.doc.Errorf(field, "secret %q needs exactly one of env or file", s.ID)
		case s.Env != "":
			v, ok := "", false
			if lookup != nil {
				v, ok = lookup(s.Env)
			}
			if !ok || v == "" {
				return f.doc.Errorf(sub("env"), "secret %q: the environment variable %s is not set", s.ID, s.Env)
			}
			if p.SecretValues == nil {
				p.SecretValues = map[string]logging.Secret{}
			}
			p.SecretValues[s.ID] = logging.Secret(v)
			logging.Register(v)
		default:
			path := s.File
			if !filepath.IsAbs(path) {
				path = filepath.Join(f.Dir, path)
			}
			data, err := os.ReadFile(path)
			if st, serr := os.Stat(path); err != nil || serr != nil || !st.Mode().IsRegular() {
				return f.doc.Errorf(sub("file"), "secret %q: %q is not a readable file", s.ID, s.File)
			}
			// Known to the log scrubber, in case a RUN step prints it.
			logging.Register(strings.TrimSpace(string(data)))
			im.Secrets[i].File = path
		}
	}
	return nil
}

func resolvePaths(f *File, im *Image) error {
	abs := func(base, p string) string {
		if filepath.IsAbs(p) {
			return filepath.Clean(p)
		}
		return filepath.Join(base, p)
	}
	if im.Native != nil {
		for _, field := range []struct{ name, val string }{{"dockerfile", im.Dockerfile}, {"target", im.Target}} {
			if field.val != "" {
				return f.doc.Errorf(im.field(field.name), "%q is not used by a native image (remove it, or remove `native`)", field.val)
			}
		}
		if len(im.BuildArgs) > 0 {
			return f.doc.Errorf(im.field("build_args"), "not used by a native image (remove it, or remove `native`)")
		}
		if im.Context == "" {
			im.Context = "."
		}
	} else if im.Context == "" {
		return f.doc.Errorf(im.field("context"), "missing: a Dockerfile image needs a context directory")
	}
	given := im.Context
	im.Context = abs(f.Dir, im.Context)
	st, err := os.Stat(im.Context)
	switch {
	case err != nil:
		return f.doc.Errorf(im.field("context"), "%q: no such directory (resolved to %s)", given, im.Context)
	case !st.IsDir():
		return f.doc.Errorf(im.field("context"), "%q is not a directory", given)
	}
	if im.Native != nil {
		return nil
	}
	if im.Dockerfile == "" {
		im.Dockerfile = "Dockerfile"
	}
	given = im.Dockerfile
	im.Dockerfile = abs(im.Context, im.Dockerfile)
	st, err = os.Stat(im.Dockerfile)
	switch {
	case err != nil:
		return f.doc.Errorf(im.field("dockerfile"), "%q: no such file in the context (resolved to %s)", given, im.Dockerfile)
	case st.IsDir():
		return f.doc.Errorf(im.field("dockerfile"), "%q is a directory, not a Dockerfile", given)
	}
	return nil
}

func planNative(f *File, im *Image, p *Planned) error {
	n := im.Native
	if n.Base != "" && n.BaseImage != "" {
		return f.doc.Errorf(im.field("native.base_image"), "%q: set base or base_image, not both", n.BaseImage)
	}
	if n.BaseImage != "" && !slices.Contains(im.DependsOn, n.BaseImage) {
		im.DependsOn = append(im.DependsOn, n.BaseImage)
	}
	base, err := expandVars(n.Base, p.BuildArgs)
	if err != nil {
		return f.doc.Errorf(im.field("native.base"), "%q: %v", n.Base, err)
	}
	if base == "scratch" {
		base = ""
	}
	if base != "" {
		if _, err := name.ParseReference(base, name.StrictValidation); err != nil {
			return f.doc.Errorf(im.field("native.base"), "%q is not a valid image reference (registry/repository:tag or @digest): %v", base, err)
		}
	}
	p.Base = base
	for i, l := range n.Layers {
		sub := func(k string) string { return im.field(fmt.Sprintf("native.layers[%d].%s", i, k)) }
		if l.Debian != nil {
			if err := planDebian(f, im, &n.Layers[i], sub); err != nil {
				return err
			}
			continue
		}
		if l.Src == "" {
			return f.doc.Errorf(sub("src"), "missing: a layer needs a src file or directory (or debian: {lock: FILE})")
		}
		if !path.IsAbs(l.Dest) {
			return f.doc.Errorf(sub("dest"), "%q must be an absolute path in the image", l.Dest)
		}
		src, err := expandVars(l.Src, p.BuildArgs)
		if err != nil {
			return f.doc.Errorf(sub("src"), "%q: %v", l.Src, err)
		}
		if src == "" {
			return f.doc.Errorf(sub("src"), "%q is empty once build args are replaced", l.Src)
		}
		if !filepath.IsAbs(src) {
			src = filepath.Join(im.Context, src)
		}
		if _, err := os.Lstat(src); err != nil {
			return f.doc.Errorf(sub("src"), "%q: no such file or directory (resolved to %s)", l.Src, src)
		}
		n.Layers[i].Src = src
	}
	for k := range n.Env {
		if !envKey.MatchString(k) {
			return f.doc.Errorf(im.field("native.env"), "%q is not a valid variable name", k)
		}
	}
	if n.Workdir != "" && !path.IsAbs(n.Workdir) {
		return f.doc.Errorf(im.field("native.workdir"), "%q must be an absolute path", n.Workdir)
	}
	return nil
}

// planDebian checks a layer of Debian packages: no src or dest (packages
// unpack at the root), and a lock that is well formed and complete.
func planDebian(f *File, im *Image, l *NativeLayer, sub func(string) string) error {
	switch {
	case l.Src != "":
		return f.doc.Errorf(sub("src"), "%q: a layer has src or debian, not both", l.Src)
	case l.Dest != "" && l.Dest != "/":
		return f.doc.Errorf(sub("dest"), "%q: Debian packages unpack at / (remove dest)", l.Dest)
	case l.Debian.Lock == "":
		return f.doc.Errorf(sub("debian.lock"), "missing: the lock file (build-image lock-debian makes it)")
	}
	lock := l.Debian.Lock
	if !filepath.IsAbs(lock) {
		lock = filepath.Join(im.Context, lock)
	}
	if st, err := os.Stat(lock); err != nil || !st.Mode().IsRegular() {
		return f.doc.Errorf(sub("debian.lock"), "%q: no such file (resolved to %s; build-image lock-debian --lock %s --package NAME makes it)", l.Debian.Lock, lock, l.Debian.Lock)
	}
	dl, err := LoadDebianLock(lock)
	if err != nil {
		return err
	}
	l.Debian.Lock, l.Debian.lock = lock, dl
	return nil
}

func expandVars(s string, args map[string]string) (string, error) {
	var err error
	out := varRefRe.ReplaceAllStringFunc(s, func(m string) string {
		k := m[2 : len(m)-1]
		v, ok := args[k]
		if !ok && err == nil {
			err = fmt.Errorf("${%s} is not a build arg (set it under `args`, or as a build arg %s=... of the run)", k, k)
		}
		return v
	})
	return out, err
}

// tagsFor picks the image's tags for the Zuul item: check and gate get the
// one temporary change tag; post gets the declared tags plus the merged
// commit; tag pipelines the declared tags plus the git tag; outside Zuul the
// declared tags, or "latest".
func tagsFor(f *File, im *Image, z *zuul.Context) ([]string, error) {
	type tmpl struct{ field, value string }
	var templates []tmpl
	declared := func() {
		for i, t := range im.Tags {
			templates = append(templates, tmpl{im.field(fmt.Sprintf("tags[%d]", i)), t})
		}
	}
	switch z.Kind() {
	case zuul.KindChange:
		templates = append(templates, tmpl{"tags.change", f.Tags.Change})
	case zuul.KindBranch:
		declared()
		if z.Revision() != "" {
			templates = append(templates, tmpl{"tags.commit", f.Tags.Commit})
		}
	case zuul.KindTag:
		declared()
		templates = append(templates, tmpl{"zuul.tag", "{tag}"})
	default:
		declared()
		if len(templates) == 0 {
			templates = append(templates, tmpl{im.field("tags"), "latest"})
		}
	}
	var tags []string
	seen := map[string]bool{}
	for _, t := range templates {
		v, err := z.Expand(t.value)
		if err != nil {
			return nil, f.doc.Errorf(t.field, "%v", err)
		}
		if !tagRe.MatchString(v) {
			return nil, f.doc.Errorf(t.field, "%q is not a valid tag (letters, digits, '_', '.', '-'; at most 128; not starting with '.' or '-')", v)
		}
		if !seen[v] {
			seen[v] = true
			tags = append(tags, v)
		}
	}
	return tags, nil
}

func standardLabels(f *File, z *zuul.Context, created time.Time) map[string]string {
	l := map[string]string{LabelCreated: created.Format(time.RFC3339)}
	src := f.Source
	if src == "" && z.Project.CanonicalName != "" {
		src = "https://" + z.Project.CanonicalName
	}
	if src != "" {
		l[LabelSource] = src
	}
	if r := z.Revision(); r != "" {
		l[LabelRevision] = r
	}
	if z.ChangeURL != "" {
		l[LabelChangeURL] = z.ChangeURL
	}
	return l
}

// order sorts plans so every image comes after its dependencies, keeping
// the file's order otherwise. A cycle is an error naming its images.
func order(f *File, plans []*Planned, byName map[string]*Image) ([]*Planned, error) {
	idx := map[string]*Planned{}
	for _, p := range plans {
		idx[p.Name] = p
	}
	for _, p := range plans {
		for i, d := range p.DependsOn {
			if _, ok := byName[d]; !ok {
				return nil, f.doc.Errorf(p.field(fmt.Sprintf("depends_on[%d]", i)), "%q is not an image of this build file (images: %s)", d, strings.Join(slices.Sorted(maps.Keys(byName)), ", "))
			}
		}
	}
	const (
		unseen = iota
		active
		done
	)
	state := map[string]int{}
	var out []*Planned
	var stack []string
	var visit func(p *Planned) error
	visit = func(p *Planned) error {
		switch state[p.Name] {
		case done:
			return nil
		case active:
			i := 0
			for stack[i] != p.Name {
				i++
			}
			cycle := append(append([]string{}, stack[i:]...), p.Name)
			return f.doc.Errorf(p.field("depends_on"), "dependency cycle between images: %s", strings.Join(cycle, " -> "))
		}
		state[p.Name] = active
		stack = append(stack, p.Name)
		for _, d := range p.DependsOn {
			if err := visit(idx[d]); err != nil {
				return err
			}
		}
		stack = stack[:len(stack)-1]
		state[p.Name] = done
		out = append(out, p)
		return nil
	}
	for _, p := range plans {
		if err := visit(p); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// DependencyArg is the build arg through which a Dockerfile image receives
// the local reference of an image it depends on: openedx → OPENEDX_IMAGE.
func DependencyArg(image string) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(image) {
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String() + "_IMAGE"
}
