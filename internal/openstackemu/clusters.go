package openstackemu

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

type cluster struct {
	uuid, name, projectID, userID, templateID, stackID string
	keypair, flavorID, masterFlavorID, discoveryURL    *string
	fixedNetwork, fixedSubnet                          *string
	dockerVolumeSize                                   *int
	labels                                             map[string]string
	createTimeout                                      int
	masterLB, floatingIP, mergeLabels                  bool
	status, statusReason                               string
	healthStatus                                       *string
	healthReason                                       map[string]string
	apiAddress, coeVersion                             *string
	masterAddresses, nodeAddresses                     []string
	createdAt                                          time.Time
	updatedAt                                          *time.Time
	nodegroups                                         []*nodegroup
	op                                                 *operation
}

type nodegroup struct {
	id                            int
	uuid, name, role, imageID     string
	flavorID                      *string
	dockerVolumeSize              *int
	labels                        map[string]string
	nodeCount, minNodeCount       int
	maxNodeCount                  *int
	isDefault                     bool
	stackID, status, statusReason string
	createdAt                     time.Time
	updatedAt                     *time.Time
	addresses                     []string
}

// operation is a cluster change in progress; advance completes it once its
// duration has passed.
type operation struct {
	action string // CREATE, UPDATE, DELETE
	start  time.Time
	dur    time.Duration
	fail   *Fault
	stuck  bool
	done   func()
	ngs    []*nodegroup // nodegroups the operation changes
}

func (c *cluster) worker() *nodegroup { return c.defaultNG("worker") }
func (c *cluster) master() *nodegroup { return c.defaultNG("master") }

func (c *cluster) defaultNG(role string) *nodegroup {
	for _, ng := range c.nodegroups {
		if ng.isDefault && ng.role == role {
			return ng
		}
	}
	return nil
}

func (c *cluster) findNodegroup(ident string) (*nodegroup, *apiError) {
	for _, ng := range c.nodegroups {
		if ng.uuid == ident || ng.name == ident || strconv.Itoa(ng.id) == ident {
			return ng, nil
		}
	}
	return nil, errorf(http.StatusNotFound, "Nodegroup %s could not be found.", ident)
}

// begin starts an operation on c, consuming a matching injected fault.
func (e *Emulator) begin(c *cluster, action string, dur time.Duration, ngs []*nodegroup, done func()) {
	op := &operation{action: action, start: e.opts.Now(), dur: dur, done: done, ngs: ngs}
	kind := map[string]FaultKind{"CREATE": FaultCreateFailed, "UPDATE": FaultUpdateFailed, "DELETE": FaultDeleteFailed}[action]
	if f := e.takeFaultLocked(FaultStuck, c.projectName(e), c.name, nil); f != nil {
		op.stuck = true
	} else if f := e.takeFaultLocked(kind, c.projectName(e), c.name, nil); f != nil {
		op.fail = f
	}
	c.op = op
	c.status = action + "_IN_PROGRESS"
	c.statusReason = "Stack " + action + " started"
	for _, ng := range ngs {
		ng.status = c.status
		ng.statusReason = c.statusReason
	}
	now := e.opts.Now()
	c.updatedAt = &now
}

func (c *cluster) projectName(e *Emulator) string {
	for _, u := range e.users {
		if u.projectID == c.projectID {
			return u.Project
		}
	}
	return ""
}

// advance completes the operations whose time has come. Called with e.mu held.
func (e *Emulator) advance(reg *region) {
	now := e.opts.Now()
	kept := reg.clusters[:0]
	for _, c := range reg.clusters {
		op := c.op
		if op == nil || op.stuck || now.Before(op.start.Add(op.dur)) {
			kept = append(kept, c)
			continue
		}
		c.op = nil
		end := op.start.Add(op.dur)
		c.updatedAt = &end
		if op.fail != nil {
			c.status = op.action + "_FAILED"
			c.statusReason = op.fail.StatusReason
			if c.statusReason == "" {
				c.statusReason = fmt.Sprintf("Resource %s failed: Error: resources.kube_minions.resources[0].resources.kube-minion: Went to status ERROR due to \"Message: No valid host was found. , Code: 500\"", op.action)
			}
			faults := op.fail.Faults
			if len(faults) == 0 {
				faults = map[string]string{"default-worker": c.statusReason}
			}
			for _, ng := range c.nodegroups {
				if reason, ok := faults[ng.name]; ok {
					ng.status, ng.statusReason = op.action+"_FAILED", reason
				} else if ng.status == op.action+"_IN_PROGRESS" {
					ng.status, ng.statusReason = op.action+"_COMPLETE", "Stack "+op.action+" completed successfully"
				}
			}
			kept = append(kept, c)
			continue
		}
		if op.action == "DELETE" {
			continue // gone
		}
		c.status = op.action + "_COMPLETE"
		c.statusReason = "Stack " + op.action + " completed successfully"
		for _, ng := range op.ngs {
			ng.status, ng.statusReason = c.status, c.statusReason
			if ng.status != "CREATE_COMPLETE" && ng.createdAt.Equal(op.start) {
				ng.status = "CREATE_COMPLETE" // a nodegroup added by this update
			}
			ng.updatedAt = &end
		}
		if op.done != nil {
			op.done()
		}
		c.refreshAddresses()
		kept = append(kept, c)
	}
	reg.clusters = kept
}

// refreshAddresses gives every node an address, as Heat outputs would.
func (c *cluster) refreshAddresses() {
	c.masterAddresses, c.nodeAddresses = nil, nil
	n := 10
	for _, ng := range c.nodegroups {
		ng.addresses = nil
		for i := 0; i < ng.nodeCount; i++ {
			n++
			addr := fmt.Sprintf("10.0.0.%d", n)
			ng.addresses = append(ng.addresses, addr)
			if ng.role == "master" {
				c.masterAddresses = append(c.masterAddresses, addr)
			} else {
				c.nodeAddresses = append(c.nodeAddresses, addr)
			}
		}
	}
	healthy := "HEALTHY"
	c.healthStatus = &healthy
	c.healthReason = map[string]string{"api": "ok"}
	for i := range c.nodeAddresses {
		c.healthReason[fmt.Sprintf("%s-node-%d.Ready", c.name, i)] = "True"
	}
}

type clusterCreate struct {
	Name              *string        `json:"name"`
	ClusterTemplateID *string        `json:"cluster_template_id"`
	Keypair           *string        `json:"keypair"`
	NodeCount         *int           `json:"node_count"`
	MasterCount       *int           `json:"master_count"`
	DockerVolumeSize  *int           `json:"docker_volume_size"`
	Labels            map[string]any `json:"labels"`
	MasterFlavorID    *string        `json:"master_flavor_id"`
	FlavorID          *string        `json:"flavor_id"`
	CreateTimeout     *int           `json:"create_timeout"`
	DiscoveryURL      *string        `json:"discovery_url"`
	FixedNetwork      *string        `json:"fixed_network"`
	FixedSubnet       *string        `json:"fixed_subnet"`
	FloatingIPEnabled *bool          `json:"floating_ip_enabled"`
	MasterLBEnabled   *bool          `json:"master_lb_enabled"`
	MergeLabels       *bool          `json:"merge_labels"`
}

func orDefault(p *string, d *string) *string {
	if p != nil && *p != "" {
		return p
	}
	return d
}

// createCluster is POST /v1/clusters: it checks the request in Magnum's
// order, fills in what it leaves out from the cluster template and starts
// the CREATE.
func (e *Emulator) createCluster(q *request) *apiError {
	var req clusterCreate
	if err := decodeBody(q, &req, "cluster"); err != nil {
		return err
	}
	if req.ClusterTemplateID == nil {
		return errorf(http.StatusBadRequest, "Invalid input for field/attribute cluster_template_id. Value: 'None'. Mandatory field missing.")
	}
	ct, err := e.findTemplate(q, *req.ClusterTemplateID)
	if err != nil {
		err.status = http.StatusBadRequest // ct_not_found_to_bad_request
		return err
	}
	name, err := clusterName(req.Name)
	if err != nil {
		return err
	}
	nodeCount, masterCount, timeout, err := createCounts(q, req)
	if err != nil {
		return err
	}
	c := e.newCluster(q, req, ct, name, timeout)
	if c.keypair == nil {
		return errorf(http.StatusBadRequest, "Invalid input for field/attribute keypair. Value: 'None'. Mandatory field missing.")
	}
	if masterCount > 1 && !c.masterLB {
		return errorf(http.StatusBadRequest, "master_count must be 1 when master_lb_enabled is False")
	}
	if c.labels, err = createLabels(req.Labels, ct, c.mergeLabels); err != nil {
		return err
	}
	worker := e.newNodegroup(c, ct, "worker", nodeCount, c.flavorID)
	if err := autoscaleBounds(worker, c.labels); err != nil {
		return err
	}
	if err := validateCounts(worker); err != nil {
		return err
	}
	master := e.newNodegroup(c, ct, "master", masterCount, c.masterFlavorID)
	c.nodegroups = []*nodegroup{master, worker}
	e.beginCreate(q, c)
	q.region.clusters = append(q.region.clusters, c)
	return accepted(q, c)
}

// clusterName is the requested name of a new cluster, checked, or a
// generated one.
func clusterName(requested *string) (string, *apiError) {
	name := "cluster-" + randomHex(3)
	if requested != nil {
		name = *requested
	}
	if !clusterNameRE.MatchString(name) || len(name) > 242 {
		return "", errorf(http.StatusBadRequest, "Invalid input for field/attribute name. Value: '%s'. Value should match the pattern ^[a-zA-Z][a-zA-Z0-9_.-]*$", name)
	}
	return name, nil
}

// createCounts are a new cluster's node_count, master_count and
// create_timeout (minutes), checked, with Magnum's defaults.
func createCounts(q *request, req clusterCreate) (nodeCount, masterCount, timeout int, err *apiError) {
	nodeCount, masterCount, timeout = 1, 1, 60
	if req.NodeCount != nil {
		nodeCount = *req.NodeCount
	}
	if req.MasterCount != nil {
		masterCount = *req.MasterCount
	}
	if req.CreateTimeout != nil {
		timeout = *req.CreateTimeout
	}
	switch {
	case nodeCount < 0:
		err = errorf(http.StatusBadRequest, "Invalid input for field/attribute node_count. Value: '%d'. Value should be greater or equal to 0", nodeCount)
	case nodeCount == 0 && q.version.less(microversion{1, 10}):
		err = errorf(http.StatusBadRequest, "Node count should be greater than 0 for this API version.")
	case masterCount < 1:
		err = errorf(http.StatusBadRequest, "Invalid input for field/attribute master_count. Value: '%d'. Value should be greater or equal to 1", masterCount)
	case timeout < 0:
		err = errorf(http.StatusBadRequest, "Invalid input for field/attribute create_timeout. Value: '%d'. Value should be greater or equal to 0", timeout)
	}
	return nodeCount, masterCount, timeout, err
}

// newCluster is the cluster req asks for, each attribute it leaves out taken
// from the template ct; no labels or nodegroups yet.
func (e *Emulator) newCluster(q *request, req clusterCreate, ct *clusterTemplate, name string, timeout int) *cluster {
	c := &cluster{
		uuid: newUUID(), name: name, projectID: q.projectID(), userID: q.token.user.id, templateID: ct.uuid,
		stackID: newUUID(), createTimeout: timeout, createdAt: e.opts.Now(),
		keypair: orDefault(req.Keypair, ct.str("keypair_id")), flavorID: orDefault(req.FlavorID, ct.str("flavor_id")),
		masterFlavorID: orDefault(req.MasterFlavorID, ct.str("master_flavor_id")), discoveryURL: req.DiscoveryURL,
		fixedNetwork: orDefault(req.FixedNetwork, ct.str("fixed_network")), fixedSubnet: orDefault(req.FixedSubnet, ct.str("fixed_subnet")),
		masterLB: ct.boolean("master_lb_enabled"), floatingIP: ct.boolean("floating_ip_enabled"),
	}
	if req.DockerVolumeSize != nil {
		c.dockerVolumeSize = req.DockerVolumeSize
	} else if n, ok := ct.attrs["docker_volume_size"].(int); ok {
		c.dockerVolumeSize = &n
	}
	if req.MasterLBEnabled != nil {
		c.masterLB = *req.MasterLBEnabled
	}
	if req.FloatingIPEnabled != nil {
		c.floatingIP = *req.FloatingIPEnabled
	}
	if req.MergeLabels != nil {
		c.mergeLabels = *req.MergeLabels
	}
	return c
}

// createLabels are a new cluster's labels: the requested ones, else the
// template's; with merge_labels, the requested ones over the template's.
func createLabels(requested map[string]any, ct *clusterTemplate, merge bool) (map[string]string, *apiError) {
	labels, err := labelsValue(requested)
	if err != nil {
		return nil, err
	}
	switch {
	case len(labels) == 0:
		labels = copyLabels(ct.labels())
	case merge:
		merged := copyLabels(ct.labels())
		for k, v := range labels {
			merged[k] = v
		}
		labels = merged
	}
	return labels, nil
}

// autoscaleBounds sets the default worker nodegroup's min_node_count and
// max_node_count from the cluster's labels of those names.
func autoscaleBounds(worker *nodegroup, labels map[string]string) *apiError {
	if v, ok := labels["min_node_count"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			return errorf(http.StatusBadRequest, "Invalid label min_node_count: %q is not an integer", v)
		}
		worker.minNodeCount = n
	}
	if v, ok := labels["max_node_count"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			return errorf(http.StatusBadRequest, "Invalid label max_node_count: %q is not an integer", v)
		}
		worker.maxNodeCount = &n
	}
	return nil
}

// beginCreate starts the CREATE of c; once done, c has its api_address (the
// region's site's, else one on the emulated private network) and, from the
// kube_tag label, its coe_version.
func (e *Emulator) beginCreate(q *request, c *cluster) {
	kubeTag := c.labels["kube_tag"]
	apiAddress := e.site(q.region.name).APIAddress
	if apiAddress == "" {
		apiAddress = fmt.Sprintf("https://172.24.4.%d:6443", 10+len(q.region.clusters)%200)
	}
	e.begin(c, "CREATE", e.opts.CreateDuration, c.nodegroups, func() {
		c.apiAddress = &apiAddress
		if kubeTag != "" {
			c.coeVersion = &kubeTag
		}
	})
}

func copyLabels(in map[string]string) map[string]string {
	out := make(map[string]string, len(in))
	for k, v := range in {
		out[k] = v
	}
	return out
}

func (e *Emulator) newNodegroup(c *cluster, ct *clusterTemplate, role string, count int, flavor *string) *nodegroup {
	e.seq++
	image, _ := ct.attrs["image_id"].(string)
	return &nodegroup{
		id: e.seq, uuid: newUUID(), name: "default-" + role, role: role, imageID: image, flavorID: flavor,
		dockerVolumeSize: c.dockerVolumeSize, labels: copyLabels(c.labels), nodeCount: count, isDefault: true,
		stackID: c.stackID, createdAt: e.opts.Now(),
	}
}

func validateCounts(ng *nodegroup) *apiError {
	if ng.maxNodeCount != nil {
		if *ng.maxNodeCount < ng.minNodeCount {
			return errorf(http.StatusBadRequest, "Nodegroup %s attribute max_node_count is invalid: min_node_count (%d) should be less or equal to max_node_count (%d)", ng.name, ng.minNodeCount, *ng.maxNodeCount)
		}
		if ng.nodeCount > *ng.maxNodeCount {
			return errorf(http.StatusBadRequest, "Nodegroup %s attribute max_node_count is invalid: node_count (%d) should be less or equal to max_node_count (%d)", ng.name, ng.nodeCount, *ng.maxNodeCount)
		}
	}
	if ng.minNodeCount > ng.nodeCount {
		return errorf(http.StatusBadRequest, "Nodegroup %s attribute min_node_count is invalid: min_node_count (%d) should be less or equal to node_count (%d)", ng.name, ng.minNodeCount, ng.nodeCount)
	}
	return nil
}

func (e *Emulator) findCluster(q *request, ident string) (*cluster, *apiError) {
	var own []*cluster
	for _, c := range q.region.clusters {
		if c.projectID == q.projectID() {
			own = append(own, c)
		}
	}
	return findOne("Cluster", ident, own, func(c *cluster) (string, string) { return c.uuid, c.name })
}

// findOne returns the one of items ident names: its uuid, or a name when
// ident is not a uuid; Magnum's errors when none or several do. kind is
// the object's API name (Cluster, ClusterTemplate).
func findOne[T any](kind, ident string, items []T, key func(T) (uuid, name string)) (T, *apiError) {
	var found []T
	for _, it := range items {
		if uuid, name := key(it); uuid == ident || !uuidRE.MatchString(ident) && name == ident {
			found = append(found, it)
		}
	}
	var none T
	switch len(found) {
	case 0:
		return none, errorf(http.StatusNotFound, "%s %s could not be found.", kind, ident)
	case 1:
		return found[0], nil
	}
	lower := strings.ToLower(kind)
	return none, errorf(http.StatusConflict, "Multiple %ss exist with same name. Please use the %s uuid instead.", lower, lower)
}

var clusterSummary = []string{"uuid", "name", "cluster_template_id", "keypair", "docker_volume_size", "labels",
	"node_count", "status", "master_flavor_id", "flavor_id", "create_timeout", "master_count", "health_status"}

func (c *cluster) view(q *request, e *Emulator, expand, withFaults bool) map[string]any {
	var parent map[string]string
	for _, ct := range q.region.templates {
		if ct.uuid == c.templateID {
			parent = ct.labels()
		}
	}
	worker, master := c.worker(), c.master()
	v := map[string]any{
		"uuid": c.uuid, "name": c.name, "cluster_template_id": c.templateID, "keypair": strOrNil(c.keypair),
		"docker_volume_size": nil, "labels": c.labels, "node_count": worker.nodeCount, "master_count": master.nodeCount,
		"status": c.status, "status_reason": c.statusReason, "master_flavor_id": strOrNil(c.masterFlavorID),
		"flavor_id": strOrNil(c.flavorID), "create_timeout": c.createTimeout, "health_status": strOrNil(c.healthStatus),
		"health_status_reason": c.healthReason, "discovery_url": strOrNil(c.discoveryURL), "api_address": strOrNil(c.apiAddress),
		"coe_version": strOrNil(c.coeVersion), "container_version": nil, "project_id": c.projectID, "user_id": c.userID,
		"node_addresses": nonNil(c.nodeAddresses), "master_addresses": nonNil(c.masterAddresses), "faults": map[string]string{},
		"fixed_network": strOrNil(c.fixedNetwork), "fixed_subnet": strOrNil(c.fixedSubnet),
		"floating_ip_enabled": c.floatingIP, "master_lb_enabled": c.masterLB, "merge_labels": c.mergeLabels,
		"created_at": c.createdAt.UTC().Format(magnumTime), "updated_at": timeOrNil(c.updatedAt),
		"links": link(q, "clusters", c.uuid),
	}
	if c.dockerVolumeSize != nil {
		v["docker_volume_size"] = *c.dockerVolumeSize
	}
	if c.healthReason == nil {
		v["health_status_reason"] = map[string]string{}
	}
	idKey := "stack_id"
	if !q.version.less(microversion{1, 13}) {
		idKey = "cluster_id"
	}
	v[idKey] = c.stackID
	if withFaults && strings.HasSuffix(c.status, "_FAILED") {
		faults := map[string]string{}
		for _, ng := range c.nodegroups {
			if strings.HasSuffix(ng.status, "FAILED") {
				faults[ng.name] = ng.statusReason
			}
		}
		v["faults"] = faults
	}
	if !expand {
		short := map[string]any{"links": v["links"], idKey: c.stackID}
		for _, k := range clusterSummary {
			short[k] = v[k]
		}
		return short
	}
	overridden, added, skipped := map[string]string{}, map[string]string{}, map[string]string{}
	for k, pv := range parent {
		if cv, ok := c.labels[k]; !ok {
			skipped[k] = pv
		} else if cv != pv {
			overridden[k] = cv
		}
	}
	for k, cv := range c.labels {
		if _, ok := parent[k]; !ok {
			added[k] = cv
		}
	}
	v["labels_overridden"], v["labels_added"], v["labels_skipped"] = overridden, added, skipped
	return v
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (e *Emulator) listClusters(q *request, detail bool) *apiError {
	items := []any{}
	for _, c := range q.region.clusters {
		if c.projectID == q.projectID() {
			items = append(items, c.view(q, e, detail, false))
		}
	}
	writeJSON(q.w, http.StatusOK, map[string]any{"clusters": items, "next": nil})
	return nil
}

// checkNodeCount rejects a cluster of no workers before microversion 1.10.
func checkNodeCount(q *request, n int) *apiError {
	if n == 0 && q.version.less(microversion{1, 10}) {
		return errorf(http.StatusBadRequest, "Node count should be greater than 0 for this API version.")
	}
	return nil
}

// accepted answers a cluster action: 202 with the cluster's uuid.
func accepted(q *request, c *cluster) *apiError {
	writeJSON(q.w, http.StatusAccepted, map[string]any{"uuid": c.uuid})
	return nil
}

func checkUpdatable(c *cluster, verb string, also ...string) *apiError {
	if updatable[c.status] {
		return nil
	}
	for _, s := range also {
		if c.status == s {
			return nil
		}
	}
	return errorf(http.StatusBadRequest, "%s a cluster when status is \"%s\" is not supported.", verb, c.status)
}

func (e *Emulator) patchCluster(q *request, c *cluster) *apiError {
	ops, err := decodePatch(q)
	if err != nil {
		return err
	}
	nodeCount := -1
	var bad []string
	for _, op := range ops {
		switch op.Path {
		case "/node_count":
			if op.Op == "remove" || json.Unmarshal(op.Value, &nodeCount) != nil || nodeCount < 0 {
				return errorf(http.StatusBadRequest, "Couldn't apply patch '%s'. Reason: node_count must be an integer >= 0", op.Path)
			}
		case "/health_status", "/health_status_reason":
		default:
			bad = append(bad, strings.TrimPrefix(op.Path, "/"))
		}
	}
	if len(bad) > 0 {
		return errorf(http.StatusBadRequest, "cannot change cluster property(ies) %s.", strings.Join(bad, ", "))
	}
	if err := checkNodeCount(q, nodeCount); err != nil {
		return err
	}
	if err := checkUpdatable(c, "Updating"); err != nil {
		return err
	}
	if w := c.worker(); nodeCount >= 0 && nodeCount != w.nodeCount {
		w.nodeCount = nodeCount
		e.begin(c, "UPDATE", e.opts.UpdateDuration, []*nodegroup{w}, nil)
	}
	return accepted(q, c)
}

func (e *Emulator) resizeCluster(q *request, c *cluster) *apiError {
	var req struct {
		NodeCount     *int     `json:"node_count"`
		NodesToRemove []string `json:"nodes_to_remove"`
		Nodegroup     string   `json:"nodegroup"`
	}
	if err := decodeBody(q, &req, "cluster_resize_req"); err != nil {
		return err
	}
	if req.NodeCount == nil || *req.NodeCount < 0 {
		return errorf(http.StatusBadRequest, "Invalid input for field/attribute node_count. Mandatory field missing.")
	}
	if err := checkNodeCount(q, *req.NodeCount); err != nil {
		return err
	}
	ng := c.worker()
	if req.Nodegroup != "" {
		var err *apiError
		if ng, err = c.findNodegroup(req.Nodegroup); err != nil {
			return err
		}
	}
	n := *req.NodeCount
	if ng.role != "master" && (n < ng.minNodeCount || ng.maxNodeCount != nil && n > *ng.maxNodeCount) {
		max := "None"
		if ng.maxNodeCount != nil {
			max = strconv.Itoa(*ng.maxNodeCount)
		}
		return errorf(http.StatusBadRequest, "Resizing %s outside the allowed range: min_node_count = %d, max_node_count = %s", ng.name, ng.minNodeCount, max)
	}
	if ng.role == "master" {
		return errorf(http.StatusBadRequest, "Resizing the master nodegroup is not supported.")
	}
	if err := checkUpdatable(c, "Resizing", statusUpdateFailed, statusUpdateInProgress); err != nil {
		return err
	}
	ng.nodeCount = n
	e.begin(c, "UPDATE", e.opts.UpdateDuration, []*nodegroup{ng}, nil)
	return accepted(q, c)
}

func (e *Emulator) upgradeCluster(q *request, c *cluster) *apiError {
	var req struct {
		ClusterTemplate string `json:"cluster_template"`
		MaxBatchSize    *int   `json:"max_batch_size"`
		Nodegroup       string `json:"nodegroup"`
	}
	if err := decodeBody(q, &req, "cluster_upgrade_req"); err != nil {
		return err
	}
	if req.ClusterTemplate == "" {
		return errorf(http.StatusBadRequest, "Invalid input for field/attribute cluster_template. Value: 'None'. Mandatory field missing.")
	}
	ct, err := e.findTemplate(q, req.ClusterTemplate)
	if err != nil {
		return err
	}
	if err := checkUpdatable(c, "Upgrading"); err != nil {
		return err
	}
	if e.opts.UpgradeUnsupported {
		return errorf(http.StatusBadRequest, "Upgrading a cluster that uses the Magnum Heat driver is not supported.")
	}
	newTag, ok := ct.labels()["kube_tag"]
	if !ok {
		return errorf(http.StatusBadRequest, "Cluster template %s does not contain any supported upgrade labels: [kube_tag, ostree_remote, ostree_commit]", ct.name())
	}
	if old, ok := c.labels["kube_tag"]; ok && versionLess(newTag, old) {
		return errorf(http.StatusBadRequest, "Invalid version for kube_tag: %s is older than the running %s.", newTag, old)
	}
	ngs := c.nodegroups
	e.begin(c, "UPDATE", e.opts.UpdateDuration, ngs, func() {
		c.templateID = ct.uuid
		c.labels["kube_tag"] = newTag
		c.coeVersion = &newTag
		for _, ng := range ngs {
			ng.labels["kube_tag"] = newTag
			ng.imageID, _ = ct.attrs["image_id"].(string)
		}
	})
	return accepted(q, c)
}

// versionLess compares v1.21.10-style tags numerically; unparsable tags never
// compare less (Magnum skips them too).
func versionLess(a, b string) bool {
	pa, oka := parseTag(a)
	pb, okb := parseTag(b)
	if !oka || !okb {
		return false
	}
	for i := 0; i < len(pa) && i < len(pb); i++ {
		if pa[i] != pb[i] {
			return pa[i] < pb[i]
		}
	}
	return len(pa) < len(pb)
}

func parseTag(s string) ([]int, bool) {
	s = strings.TrimPrefix(s, "v")
	s, _, _ = strings.Cut(s, "-")
	var out []int
	for _, p := range strings.Split(s, ".") {
		n, err := strconv.Atoi(p)
		if err != nil {
			return nil, false
		}
		out = append(out, n)
	}
	return out, true
}

func (e *Emulator) deleteCluster(q *request, c *cluster) *apiError {
	if c.status != statusDeleteInProgress {
		e.begin(c, "DELETE", e.opts.DeleteDuration, c.nodegroups, nil)
		c.healthStatus, c.healthReason = nil, nil
	}
	q.w.WriteHeader(http.StatusNoContent)
	return nil
}

func (ng *nodegroup) view(q *request, c *cluster, expand bool) map[string]any {
	v := map[string]any{
		"id": ng.id, "uuid": ng.uuid, "name": ng.name, "cluster_id": c.uuid, "project_id": c.projectID,
		"flavor_id": strOrNil(ng.flavorID), "image_id": ng.imageID, "node_addresses": nonNil(ng.addresses),
		"node_count": ng.nodeCount, "role": ng.role, "min_node_count": ng.minNodeCount, "max_node_count": nil,
		"is_default": ng.isDefault, "stack_id": ng.stackID, "status": ng.status, "status_reason": ng.statusReason,
		"labels": ng.labels, "docker_volume_size": nil, "version": nil, "merge_labels": false,
		"created_at": ng.createdAt.UTC().Format(magnumTime), "updated_at": timeOrNil(ng.updatedAt),
		"links": link(q, "clusters/"+c.uuid+"/nodegroups", ng.uuid),
	}
	if ng.maxNodeCount != nil {
		v["max_node_count"] = *ng.maxNodeCount
	}
	if ng.dockerVolumeSize != nil {
		v["docker_volume_size"] = *ng.dockerVolumeSize
	}
	if !expand {
		short := map[string]any{}
		for _, k := range []string{"uuid", "name", "flavor_id", "image_id", "node_count", "role", "is_default", "status", "max_node_count", "min_node_count", "links"} {
			short[k] = v[k]
		}
		return short
	}
	return v
}

func (e *Emulator) listNodegroups(q *request, c *cluster) *apiError {
	role := q.r.URL.Query().Get("role")
	items := []any{}
	for _, ng := range c.nodegroups {
		if role == "" || ng.role == role {
			items = append(items, ng.view(q, c, false))
		}
	}
	writeJSON(q.w, http.StatusOK, map[string]any{"nodegroups": items, "next": nil})
	return nil
}

func (e *Emulator) patchNodegroup(q *request, c *cluster, ident string) *apiError {
	ng, err := c.findNodegroup(ident)
	if err != nil {
		return err
	}
	ops, err := decodePatch(q)
	if err != nil {
		return err
	}
	next := *ng
	var bad []string
	for _, op := range ops {
		switch op.Path {
		case "/min_node_count":
			n := 0
			if op.Op != "remove" && (json.Unmarshal(op.Value, &n) != nil || n < 0) {
				return errorf(http.StatusBadRequest, "Invalid input for field/attribute min_node_count. Value: '%s'.", op.Value)
			}
			next.minNodeCount = n
		case "/max_node_count":
			if op.Op == "remove" || string(op.Value) == "null" {
				next.maxNodeCount = nil
				continue
			}
			var n int
			if json.Unmarshal(op.Value, &n) != nil || n < 0 {
				return errorf(http.StatusBadRequest, "Invalid input for field/attribute max_node_count. Value: '%s'.", op.Value)
			}
			next.maxNodeCount = &n
		default:
			bad = append(bad, strings.TrimPrefix(op.Path, "/"))
		}
	}
	if len(bad) > 0 {
		return errorf(http.StatusBadRequest, "cannot change nodegroup property(ies) %s.", strings.Join(bad, ", "))
	}
	if err := validateCounts(&next); err != nil {
		return err
	}
	if err := checkUpdatable(c, "Updating"); err != nil {
		return err
	}
	ng.minNodeCount, ng.maxNodeCount = next.minNodeCount, next.maxNodeCount
	e.begin(c, "UPDATE", e.opts.UpdateDuration, []*nodegroup{ng}, nil)
	writeJSON(q.w, http.StatusAccepted, ng.view(q, c, true))
	return nil
}

func (e *Emulator) createNodegroup(q *request, c *cluster) *apiError {
	var req struct {
		Name             string            `json:"name"`
		DockerVolumeSize *int              `json:"docker_volume_size"`
		Labels           map[string]any    `json:"labels"`
		NodeCount        *int              `json:"node_count"`
		MinNodeCount     int               `json:"min_node_count"`
		MaxNodeCount     *int              `json:"max_node_count"`
		Role             string            `json:"role"`
		ImageID          string            `json:"image_id"`
		FlavorID         string            `json:"flavor_id"`
		MergeLabels      *bool             `json:"merge_labels"`
		NodeLabels       map[string]string `json:"node_labels"`
	}
	if err := decodeBody(q, &req, "nodegroup"); err != nil {
		return err
	}
	if req.Name == "" {
		return errorf(http.StatusBadRequest, "Invalid input for field/attribute name. Value: 'None'. Mandatory field missing.")
	}
	for _, ng := range c.nodegroups {
		if ng.name == req.Name {
			return errorf(http.StatusConflict, "A node group with name %s already exists in the cluster %s.", req.Name, c.uuid)
		}
	}
	if req.Role == "master" {
		return errorf(http.StatusBadRequest, "Creating master nodegroups is currently not supported.")
	}
	if err := checkUpdatable(c, "Creating a nodegroup for"); err != nil {
		return err
	}
	labels := copyLabels(c.labels)
	if len(req.Labels) > 0 {
		l, err := labelsValue(req.Labels)
		if err != nil {
			return err
		}
		if req.MergeLabels == nil || !*req.MergeLabels {
			labels = map[string]string{}
		}
		for k, v := range l {
			labels[k] = v
		}
	}
	e.seq++
	ng := &nodegroup{id: e.seq, uuid: newUUID(), name: req.Name, role: req.Role, imageID: req.ImageID, labels: labels,
		nodeCount: 1, minNodeCount: req.MinNodeCount, maxNodeCount: req.MaxNodeCount, stackID: newUUID(),
		dockerVolumeSize: req.DockerVolumeSize, createdAt: e.opts.Now()}
	if ng.role == "" {
		ng.role = "worker"
	}
	if req.NodeCount != nil {
		ng.nodeCount = *req.NodeCount
	}
	if req.FlavorID != "" {
		ng.flavorID = &req.FlavorID
	} else {
		ng.flavorID = c.flavorID
	}
	if ng.imageID == "" {
		ng.imageID = c.worker().imageID
	}
	if err := validateCounts(ng); err != nil {
		return err
	}
	c.nodegroups = append(c.nodegroups, ng)
	e.begin(c, "UPDATE", e.opts.UpdateDuration, []*nodegroup{ng}, nil)
	ng.status, ng.createdAt = "CREATE_IN_PROGRESS", c.op.start
	writeJSON(q.w, http.StatusAccepted, ng.view(q, c, true))
	return nil
}

func (e *Emulator) deleteNodegroup(q *request, c *cluster, ident string) *apiError {
	ng, err := c.findNodegroup(ident)
	if err != nil {
		return err
	}
	if ng.isDefault {
		return errorf(http.StatusBadRequest, "Deleting a default nodegroup is not supported.")
	}
	if err := checkUpdatable(c, "Deleting a nodegroup of"); err != nil {
		return err
	}
	kept := c.nodegroups[:0]
	for _, o := range c.nodegroups {
		if o != ng {
			kept = append(kept, o)
		}
	}
	c.nodegroups = kept
	e.begin(c, "UPDATE", e.opts.UpdateDuration, nil, nil)
	q.w.WriteHeader(http.StatusNoContent)
	return nil
}
