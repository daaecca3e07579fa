package magnum

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/slipwayci/slipway/internal/cli"
	"github.com/slipwayci/slipway/internal/logging"
	"github.com/slipwayci/slipway/internal/osauth"
	"github.com/slipwayci/slipway/internal/progress"
	"github.com/slipwayci/slipway/internal/result"
	"github.com/slipwayci/slipway/internal/zuul"
)

// Options configure every magnum-cluster command. Commands that work on a
// spec need Spec; show, delete and kubeconfig accept ClusterName instead.
type Options struct {
	Auth osauth.Options
	// Spec is the parsed spec file, SpecFile its path (for messages).
	Spec     *Spec
	SpecFile string
	// ClusterName names the cluster when there is no spec.
	ClusterName string
	// Kubeconfig is where to write the kubeconfig (0600).
	Kubeconfig string
	// ResultFile gets the ClusterResult; ZuulReturn the zuul_return data.
	ResultFile string
	ZuulReturn string
	Zuul       *zuul.Context
	// WaitTimeout bounds each wait. Default: the spec's create_timeout plus
	// 10 minutes for creates, 60 minutes for updates and deletes.
	WaitTimeout time.Duration
	// PollInterval is the first pause between status polls (default 5s);
	// it grows by half each poll up to MaxPollInterval (default 30s).
	PollInterval, MaxPollInterval time.Duration
	// AllVersions makes template delete remove every unused version.
	AllVersions bool

	// Out receives the machine-readable result (stdout).
	Out io.Writer
	// Log and Progress report on stderr.
	Log      *slog.Logger
	Progress *progress.Printer
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

func (o *Options) defaults() {
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Log == nil {
		o.Log = logging.Discard()
	}
	if o.Progress == nil {
		o.Progress = progress.Discard()
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 5 * time.Second
	}
	if o.MaxPollInterval < o.PollInterval {
		o.MaxPollInterval = 30 * time.Second
		if o.MaxPollInterval < o.PollInterval {
			o.MaxPollInterval = o.PollInterval
		}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Auth.Stage == "" {
		o.Auth.Stage = "magnum-cluster"
	}
}

func (o *Options) clusterName() string {
	if o.Spec != nil {
		return o.Spec.Cluster.Name
	}
	return o.ClusterName
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("writing the result: %w", err)
	}
	return nil
}

// publish writes res to stdout, the result file and the zuul_return file.
func publish(o *Options, res *result.ClusterResult) error {
	if o.Zuul != nil {
		res.Zuul = o.Zuul.ResultRef()
	}
	res.Cloud = o.Auth.Cloud
	if res.Changes == nil {
		res.Changes = []string{}
	}
	res.Header = result.Header{APIVersion: result.APIVersion, Kind: res.ResultKind(), Generated: o.Now().UTC().Truncate(time.Second), Tool: "magnum-cluster"}
	if o.ResultFile != "" {
		if err := result.WriteFile(o.ResultFile, res, 0o644); err != nil {
			return err
		}
	}
	if o.ZuulReturn != "" {
		c := res.Cluster
		ret := zuul.Return{
			Artifacts: []zuul.Artifact{{
				Name: "magnum cluster " + c.Name, URL: c.APIAddress,
				Metadata: map[string]any{"type": "magnum_cluster", "uuid": c.UUID, "region": res.Region, "template": res.Template.Name, "status": c.Status},
			}},
			Vars: map[string]any{"slipway_cluster": map[string]any{
				"name": c.Name, "uuid": c.UUID, "status": c.Status, "api_address": c.APIAddress, "region": res.Region,
				"template": res.Template.Name, "master_count": c.MasterCount, "node_count": c.NodeCount,
				"kubeconfig": res.Kubeconfig, "changes": res.Changes,
			}},
		}
		if err := ret.WriteFile(o.ZuulReturn); err != nil {
			return err
		}
	}
	return writeJSON(o.Out, res)
}

// startWithSpec begins a command that needs the spec file: defaults, the
// spec check, and the connection to Magnum.
func startWithSpec(ctx context.Context, o *Options) (*api, error) {
	o.defaults()
	if err := needSpec(o); err != nil {
		return nil, err
	}
	return connect(ctx, o.Auth)
}

// startWithName begins a command that needs only the cluster's name (from
// --name or the spec): defaults, the name, and the connection to Magnum.
func startWithName(ctx context.Context, o *Options) (string, *api, error) {
	o.defaults()
	name := o.clusterName()
	if name == "" {
		return "", nil, cli.Usagef("name the cluster: --spec FILE or --name NAME")
	}
	a, err := connect(ctx, o.Auth)
	return name, a, err
}
