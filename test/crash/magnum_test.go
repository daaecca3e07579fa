package crash

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/containerinfra/v1/clusters"
	"github.com/gophercloud/gophercloud/v2/openstack/containerinfra/v1/clustertemplates"

	"github.com/slipwayci/slipway/internal/magnum"
	"github.com/slipwayci/slipway/internal/magnum/magnumtest"
	"github.com/slipwayci/slipway/internal/osauth"
	"github.com/slipwayci/slipway/internal/result"
	"github.com/slipwayci/slipway/internal/testenv"
)

// clusterSpec is examples/cluster/local.yaml, upgraded to kube_tag
// v1.21.14 when upgraded is set.
func clusterSpec(t *testing.T, dir string, upgraded bool) string {
	t.Helper()
	data, err := os.ReadFile(example("cluster/local.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	spec := string(data)
	if upgraded {
		if !strings.Contains(spec, "kube_tag: v1.21.10") {
			t.Fatal("examples/cluster/local.yaml no longer has kube_tag v1.21.10: update the upgrade scenario")
		}
		spec = strings.Replace(spec, "kube_tag: v1.21.10", "kube_tag: v1.21.14", 1)
	}
	p := filepath.Join(dir, fmt.Sprintf("cluster-%t.yaml", upgraded))
	if err := os.WriteFile(p, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// ensureCommand is cluster ensure of spec in the project of e.
func ensureCommand(t *testing.T, e *magnumtest.Env, spec string) *command {
	dir := t.TempDir()
	res, kubeconfig := filepath.Join(dir, "cluster.json"), filepath.Join(dir, "kubeconfig")
	return &command{
		bin: "magnum-cluster",
		args: []string{"cluster", "ensure", "--spec", spec, "--poll-interval", "100ms", "--wait-timeout", "2m",
			"--result", res, "--kubeconfig", kubeconfig},
		env: []string{"OS_AUTH_URL=" + e.Auth.AuthURL, "OS_USERNAME=" + e.Project, "OS_PASSWORD=" + e.Password,
			"OS_USER_DOMAIN_NAME=Default", "OS_PROJECT_NAME=" + e.Project, "OS_PROJECT_DOMAIN_NAME=Default",
			"OS_REGION_NAME=RegionOne", "OS_CLOUD=", "OS_CLIENT_CONFIG_FILE=/nonexistent"},
		dirs:  []string{dir},
		state: func(t *testing.T) string { return clusterState(t, e, res, kubeconfig) },
		unchanged: func(outcome) error {
			var cr result.ClusterResult
			if err := result.ReadFile(res, &cr); err != nil {
				return err
			}
			if len(cr.Changes) > 0 {
				return fmt.Errorf("changes %q", cr.Changes)
			}
			return nil
		},
	}
}

// clusterState is what the project holds (every template and cluster, by
// name, with what ensure sets) and what the result and kubeconfig say.
func clusterState(t *testing.T, e *magnumtest.Env, resFile, kubeconfig string) string {
	t.Helper()
	ctx := context.Background()
	s, err := osauth.Authenticate(ctx, e.Auth)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := s.ServiceClient("container-infra", openstack.NewContainerInfraV1)
	if err != nil {
		t.Fatal(err)
	}
	sc.Microversion = magnum.Microversion
	var lines []string
	templates, err := listTemplates(ctx, sc)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]string{}
	for _, ct := range templates {
		byID[ct.UUID] = ct.Name
		lines = append(lines, fmt.Sprintf("template %s labels %v", ct.Name, ct.Labels))
	}
	pages, err := clusters.List(sc, nil).AllPages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	list, err := clusters.ExtractClusters(pages)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range list {
		full, err := clusters.Get(ctx, sc, c.UUID).Extract()
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, fmt.Sprintf("cluster %s %s template %s masters %d workers %d coe %s api %s",
			full.Name, full.Status, byID[full.ClusterTemplateID], full.MasterCount, full.NodeCount, full.COEVersion, full.APIAddress))
	}
	sort.Strings(lines)
	var cr result.ClusterResult
	if err := result.ReadFile(resFile, &cr); err != nil {
		lines = append(lines, "no result: "+err.Error())
	} else {
		c := cr.Cluster
		lines = append(lines, fmt.Sprintf("result: %s %s template %s masters %d workers %d bounds %d-%v", c.Name, c.Status, cr.Template.Name,
			c.MasterCount, c.NodeCount, c.MinNodeCount, deref(c.MaxNodeCount)))
	}
	if info, err := os.Stat(kubeconfig); err != nil {
		lines = append(lines, "no kubeconfig: "+err.Error())
	} else {
		lines = append(lines, fmt.Sprintf("kubeconfig mode %v", info.Mode().Perm()))
	}
	return strings.Join(lines, "\n")
}

func listTemplates(ctx context.Context, sc *gophercloud.ServiceClient) ([]clustertemplates.ClusterTemplate, error) {
	pages, err := clustertemplates.List(sc, nil).AllPages(ctx)
	if err != nil {
		return nil, err
	}
	return clustertemplates.ExtractClusterTemplates(pages)
}

func deref(p *int) any {
	if p == nil {
		return "none"
	}
	return *p
}

func crashMagnumCluster(t *testing.T) {
	testenv.Require(t, "SLIPWAY_TEST_OS_AUTH_URL")
	crash(t, "magnum-cluster", 3,
		scenario{name: "ensure (create)", setup: func(t *testing.T, id string) *command {
			e := magnumtest.New(t)
			return ensureCommand(t, e, clusterSpec(t, e.Dir, false))
		}},
		scenario{name: "ensure (upgrade)", setup: func(t *testing.T, id string) *command {
			e := magnumtest.New(t)
			if o := run(t, ensureCommand(t, e, clusterSpec(t, e.Dir, false)), nil); o.code != 0 {
				t.Fatalf("creating the cluster to upgrade: %s", o)
			}
			return ensureCommand(t, e, clusterSpec(t, e.Dir, true))
		}},
	)
}
