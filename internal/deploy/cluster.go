package deploy

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/slipwayci/slipway/internal/usererr"
)

// cluster bundles the clients one run uses.
type cluster struct {
	dyn    dynamic.Interface
	core   kubernetes.Interface
	mapper meta.RESTMapper
}

// connect loads the kubeconfig (path, or the usual KUBECONFIG/~/.kube/config
// chain when empty) and builds the clients. A kubeconfig that cannot be read
// is a usage error; its content (client keys) never appears in errors.
func connect(ctx context.Context, kubeconfig, kubeContext, userAgent string) (*cluster, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if kubeconfig != "" {
		rules = &clientcmd.ClientConfigLoadingRules{ExplicitPath: kubeconfig}
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules,
		&clientcmd.ConfigOverrides{CurrentContext: kubeContext}).ClientConfig()
	if err != nil {
		return nil, usererr.Errorf("loading kubeconfig %s: %w", kubeconfig, err)
	}
	c, err := newCluster(cfg, userAgent)
	if err != nil {
		return nil, err
	}
	// One cheap request first, so an unreachable cluster or rejected
	// credentials are reported as such, before any work.
	if err := c.core.Discovery().RESTClient().Get().AbsPath("/version").Do(ctx).Error(); err != nil {
		return nil, fmt.Errorf("reaching the Kubernetes API at %s: %w (check the kubeconfig and that the cluster is up; nothing was changed)", cfg.Host, ctxErr(ctx, err))
	}
	return c, nil
}

func newCluster(cfg *rest.Config, userAgent string) (*cluster, error) {
	cfg = rest.CopyConfig(cfg)
	// client-go's default 5 QPS would make a 300-object deploy take a minute;
	// the apiserver's own priority and fairness protects it.
	cfg.QPS, cfg.Burst = 200, 400
	cfg.UserAgent = userAgent
	cfg.WarningHandler = rest.NoWarnings{}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating Kubernetes client: %w", err)
	}
	core, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating Kubernetes client: %w", err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(core.Discovery()))
	return &cluster{dyn: dyn, core: core, mapper: mapper}, nil
}

// resource returns the client for mapping m in namespace ns.
func (c *cluster) resource(m *meta.RESTMapping, ns string) dynamic.ResourceInterface {
	if m.Scope.Name() == meta.RESTScopeNameRoot {
		return c.dyn.Resource(m.Resource)
	}
	return c.dyn.Resource(m.Resource).Namespace(ns)
}

// ApplySet parent: a Secret in the namespace, as `kubectl apply --applyset`
// makes by default, so kubectl can read (and prune) the same inventory.
const (
	applySetParentName = "slipway"
	applySetTooling    = "slipway/v1"
	labelApplySetID    = "applyset.kubernetes.io/id"
	labelPartOf        = "applyset.kubernetes.io/part-of"
	annApplySetTooling = "applyset.kubernetes.io/tooling"
	annApplySetGKs     = "applyset.kubernetes.io/contains-group-kinds"
)

// applySetID is kubectl's ApplySet ID for the parent Secret
// (base64url(sha256(name.namespace.kind.group)), "applyset-%s-v1").
func applySetID(ns string) string {
	sum := sha256.Sum256([]byte(strings.Join([]string{applySetParentName, ns, "Secret", ""}, ".")))
	return "applyset-" + base64.RawURLEncoding.EncodeToString(sum[:]) + "-v1"
}

// ctxErr prefers the context's error (interrupt, timeout) over what a client
// made of it.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return err
}
