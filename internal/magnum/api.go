package magnum

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/containerinfra/v1/clusters"
	"github.com/gophercloud/gophercloud/v2/openstack/containerinfra/v1/clustertemplates"
	"github.com/gophercloud/gophercloud/v2/pagination"

	"github.com/slipwayci/slipway/internal/osauth"
)

// Microversion is the container-infra API microversion sent on every
// request: 1.10 has resize (1.7), upgrade (1.8), nodegroups (1.9) and
// zero-node worker groups. Magnum Victoria and newer serve it.
const Microversion = "1.10"

// ErrMicroversion means the Magnum API is too old for magnum-cluster.
var ErrMicroversion = errors.New("container-infra microversion unsupported")

// api is the Magnum endpoint of one region.
type api struct {
	sc     *gophercloud.ServiceClient
	region string
}

func connect(ctx context.Context, auth osauth.Options) (*api, error) {
	s, err := osauth.Authenticate(ctx, auth)
	if err != nil {
		return nil, err
	}
	sc, err := s.ServiceClient("container-infra", openstack.NewContainerInfraV1)
	if err != nil {
		return nil, err
	}
	sc.Microversion = Microversion
	return &api{sc: sc, region: s.Endpoint.Region}, nil
}

// magnumError is Magnum's error body.
type magnumError struct {
	Errors []struct {
		Title      string `json:"title"`
		Detail     string `json:"detail"`
		MaxVersion string `json:"max_version"`
		MinVersion string `json:"min_version"`
	} `json:"errors"`
}

// statusOf returns the HTTP status of a gophercloud error, or 0.
func statusOf(err error) int {
	var ue gophercloud.ErrUnexpectedResponseCode
	if errors.As(err, &ue) {
		return ue.Actual
	}
	return 0
}

// explain turns a gophercloud error into one line: what we were doing, what
// Magnum said, and the status.
func (a *api) explain(doing string, err error) error {
	var ue gophercloud.ErrUnexpectedResponseCode
	if !errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", doing, err)
	}
	var body magnumError
	_ = json.Unmarshal(ue.Body, &body)
	detail := strings.TrimSpace(string(ue.Body))
	if len(body.Errors) > 0 {
		detail = body.Errors[0].Detail
		if detail == "" {
			detail = body.Errors[0].Title
		}
	}
	if ue.Actual == http.StatusNotAcceptable {
		max := ue.ResponseHeader.Get("OpenStack-API-Maximum-Version")
		if len(body.Errors) > 0 && body.Errors[0].MaxVersion != "" {
			max = body.Errors[0].MaxVersion
		}
		return fmt.Errorf("%s: %w: the Magnum API of region %s serves microversions up to %q, magnum-cluster needs container-infra %s (Magnum Victoria or newer, for resize, upgrade and nodegroups): upgrade Magnum or use a cloud that has it (%s)",
			doing, ErrMicroversion, a.regionName(), strings.TrimPrefix(max, "container-infra "), Microversion, detail)
	}
	if len(detail) > 400 {
		detail = detail[:400] + "..."
	}
	return fmt.Errorf("%s: Magnum answered %d: %s", doing, ue.Actual, detail)
}

func (a *api) regionName() string {
	if a.region == "" {
		return "(default)"
	}
	return a.region
}

// listAll reads every page of a list of what (e.g. "clusters").
func listAll[T any](ctx context.Context, a *api, what string, pager pagination.Pager, extract func(pagination.Page) ([]T, error)) ([]T, error) {
	pages, err := pager.AllPages(ctx)
	if err != nil {
		return nil, a.explain("listing "+what, err)
	}
	list, err := extract(pages)
	if err != nil {
		return nil, fmt.Errorf("decoding %s: %w", what, err)
	}
	return list, nil
}

func (a *api) templates(ctx context.Context) ([]clustertemplates.ClusterTemplate, error) {
	return listAll(ctx, a, "cluster templates", clustertemplates.List(a.sc, nil), clustertemplates.ExtractClusterTemplates)
}

func (a *api) template(ctx context.Context, id string) (*clustertemplates.ClusterTemplate, error) {
	ct, err := clustertemplates.Get(ctx, a.sc, id).Extract()
	if err != nil {
		return nil, a.explain("reading cluster template "+id, err)
	}
	return ct, nil
}

// clusterByName returns the cluster named name, or nil if there is none.
func (a *api) clusterByName(ctx context.Context, name string) (*clusters.Cluster, error) {
	list, err := listAll(ctx, a, "clusters", clusters.List(a.sc, nil), clusters.ExtractClusters)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, c := range list {
		if c.Name == name {
			ids = append(ids, c.UUID)
		}
	}
	switch len(ids) {
	case 0:
		return nil, nil
	case 1:
		return a.cluster(ctx, ids[0])
	}
	return nil, fmt.Errorf("%d clusters are named %s (%s): delete the extra ones by UUID with `openstack coe cluster delete` and rerun", len(ids), name, strings.Join(ids, ", "))
}

func (a *api) cluster(ctx context.Context, id string) (*clusters.Cluster, error) {
	c, err := clusters.Get(ctx, a.sc, id).Extract()
	if err != nil {
		return nil, a.explain("reading cluster "+id, err)
	}
	return c, nil
}
