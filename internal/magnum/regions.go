package magnum

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/slipwayci/slipway/internal/fanout"
	"github.com/slipwayci/slipway/internal/result"
	"github.com/slipwayci/slipway/internal/usererr"
)

// Errors about the region options (user errors; the command names the flag).
var (
	// ErrUnknownRegion: Options.Region or a RegionClouds key is not a region
	// of the spec.
	ErrUnknownRegion = usererr.New("the region is not in the spec")
	// ErrNoRegions: a region option was given for a spec without regions.
	ErrNoRegions = usererr.New("the spec names no regions")
	// ErrKubeconfigRegions: one kubeconfig path for several regions.
	ErrKubeconfigRegions = usererr.New("one kubeconfig path for several regions")
)

// RegionAnswer is what a command did in one region of a spec with regions.
type RegionAnswer[T any] struct {
	Region string `json:"region"`
	Answer T      `json:"answer"`
}

// regionOptions are the Options of each region the command works on: the
// spec's regions (only o.Region when set), each with its merged spec, the
// region's name (and cloud) for authentication, its kubeconfig path and a
// logger that names it. Nil for a spec without regions.
func (o Options) regionOptions() ([]Options, error) {
	if o.Spec == nil || !o.Spec.HasRegions() {
		switch {
		case o.Region != "":
			return nil, fmt.Errorf("%w: %s cannot be chosen; the region comes from OS_REGION_NAME (or the cloud's region_name)", ErrNoRegions, o.Region)
		case len(o.RegionClouds) > 0:
			return nil, fmt.Errorf("%w: a cloud per region needs regions: in the spec", ErrNoRegions)
		}
		return nil, nil
	}
	names := o.Spec.RegionNames()
	for _, r := range append(slices.Sorted(mapKeys(o.RegionClouds)), o.Region) {
		if r != "" && !slices.Contains(names, r) {
			return nil, fmt.Errorf("%w: %s is not one of its regions (%s)", ErrUnknownRegion, r, strings.Join(names, ", "))
		}
	}
	if o.Region != "" {
		names = []string{o.Region}
	}
	if o.Kubeconfig != "" && len(names) > 1 {
		return nil, fmt.Errorf("%w: the spec names %d regions (%s): write one kubeconfig per region into a directory, or choose one region",
			ErrKubeconfigRegions, len(names), strings.Join(names, ", "))
	}
	out := make([]Options, len(names))
	for i, name := range names {
		r := o
		r.Spec, r.Region, r.region = o.Spec.InRegion(name), name, name
		r.Auth.Region = name
		if c := o.RegionClouds[name]; c != "" {
			r.Auth.Cloud = c
		}
		if o.KubeconfigDir != "" {
			r.Kubeconfig = KubeconfigPath(o.KubeconfigDir, name)
		}
		r.Log = o.Log.With("region", name)
		out[i] = r
	}
	return out, nil
}

// KubeconfigPath is where a command given a kubeconfig directory writes
// the kubeconfig of region: DIR/<region>.kubeconfig.
func KubeconfigPath(dir, region string) string {
	if region == "" {
		region = "default"
	}
	return filepath.Join(dir, region+".kubeconfig")
}

func mapKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// InRegions runs a single-region command in every region of the spec (or
// o.Region), in parallel, each to its end whatever the others do; it
// returns the answers of every region, in the spec's order, or an error
// that reports each region (see RegionsError). changed, when given, tells
// whether an answer changed something (which decides whether a failure in
// another region may still be a user error, exit 2).
func InRegions[T any](f func(context.Context, Options) (T, error), changed func(T) bool) func(context.Context, Options) ([]RegionAnswer[T], error) {
	return func(ctx context.Context, o Options) ([]RegionAnswer[T], error) {
		o.defaults()
		regions, err := o.regionOptions()
		if err != nil {
			return nil, err
		}
		if regions == nil {
			return nil, fmt.Errorf("the spec names no regions: run the command for the one region instead")
		}
		answers := make([]RegionAnswer[T], len(regions))
		errs := make([]error, len(regions))
		_ = fanout.All(ctx, 0, regions, func(ctx context.Context, i int, r Options) error {
			answers[i].Region = r.Region
			answers[i].Answer, errs[i] = f(ctx, r)
			if errs[i] != nil {
				r.Log.Error("region failed", "error", errs[i].Error())
			} else {
				r.Log.Info("region done")
			}
			return nil
		})
		re := &RegionsError{}
		for i, r := range regions {
			switch {
			case errs[i] != nil:
				re.Failed = append(re.Failed, r.Region)
				re.Errs = append(re.Errs, errs[i])
			default:
				re.Done = append(re.Done, r.Region)
				re.changed = re.changed || changed != nil && changed(answers[i].Answer)
			}
		}
		if len(re.Failed) > 0 {
			return nil, re.normalised()
		}
		return answers, nil
	}
}

// RegionsError is a command that failed in some regions of a spec: it
// names each failed region with its error and the regions that are done,
// whose work stands (a rerun of the same command finds it done).
type RegionsError struct {
	Failed []string
	Errs   []error // of Failed, in the same order
	Done   []string
	// changed: a region that is done changed something.
	changed bool
}

func (e *RegionsError) Error() string {
	var b strings.Builder
	for i, r := range e.Failed {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "region %s: %v", r, e.Errs[i])
	}
	if len(e.Done) > 0 {
		fmt.Fprintf(&b, "; region %s done: rerun the same command to finish region %s", strings.Join(e.Done, ", "), strings.Join(e.Failed, ", "))
	}
	return b.String()
}

// Is makes errors.Is see each region's error (ErrWaitTimeout, ...).
func (e *RegionsError) Is(target error) bool {
	for _, err := range e.Errs {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// normalised is the error to return: a user error (exit 2) when every
// failed region failed on bad input and no region changed anything, as
// "bad input, nothing changed" requires; e itself (exit 1) otherwise,
// because a user error in one region must not hide work done in another.
func (e *RegionsError) normalised() error {
	for _, err := range e.Errs {
		if !usererr.Is(err) {
			return e
		}
	}
	if e.changed {
		return e
	}
	return usererr.Wrap(e)
}

// ClustersEnsure is ClusterEnsure in every region of a spec with regions
// (or o.Region): each region's template and cluster converged through its
// own Magnum endpoint, in parallel, each region's kubeconfig written when
// o.KubeconfigDir (or, for one region, o.Kubeconfig) asks for it.
func ClustersEnsure(ctx context.Context, o Options) (*result.ClustersResult, error) {
	answers, err := InRegions(ClusterEnsure, func(r *result.ClusterResult) bool { return len(r.Changes) > 0 })(ctx, o)
	if err != nil {
		return nil, err
	}
	return clustersResult(&o, answers), nil
}

// ClustersShow is ClusterShow in every region of a spec with regions (or
// o.Region).
func ClustersShow(ctx context.Context, o Options) (*result.ClustersResult, error) {
	answers, err := InRegions(ClusterShow, nil)(ctx, o)
	if err != nil {
		return nil, err
	}
	return clustersResult(&o, answers), nil
}

func clustersResult(o *Options, answers []RegionAnswer[*result.ClusterResult]) *result.ClustersResult {
	o.defaults()
	res := &result.ClustersResult{Regions: make([]result.ClusterResult, len(answers)), Changes: []string{}}
	now := o.Now().UTC().Truncate(time.Second)
	if o.Zuul != nil {
		res.Zuul = o.Zuul.ResultRef()
	}
	for i, a := range answers {
		r := *a.Answer
		r.Zuul = nil
		r.APIVersion, r.Kind, r.Generated = result.APIVersion, r.ResultKind(), now
		res.Regions[i] = r
		for _, c := range r.Changes {
			res.Changes = append(res.Changes, a.Region+": "+c)
		}
	}
	return res
}

// RegionLines prefixes every line of each region's answer with the region,
// as diff prints plans.
func RegionLines(answers []RegionAnswer[[]string]) []string {
	var out []string
	for _, a := range answers {
		for _, l := range a.Answer {
			out = append(out, a.Region+": "+l)
		}
	}
	return out
}
