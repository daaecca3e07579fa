package openstackemu

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Cluster statuses, as in magnum/objects/fields.py.
const (
	statusCreateInProgress = "CREATE_IN_PROGRESS"
	statusCreateComplete   = "CREATE_COMPLETE"
	statusUpdateInProgress = "UPDATE_IN_PROGRESS"
	statusUpdateComplete   = "UPDATE_COMPLETE"
	statusUpdateFailed     = "UPDATE_FAILED"
	statusDeleteInProgress = "DELETE_IN_PROGRESS"
)

const magnumTime = "2006-01-02T15:04:05+00:00"

var (
	uuidRE        = regexp.MustCompile(`^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$`)
	clusterNameRE = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_.-]*$`)
)

// updatable is where Magnum's conductor accepts updates and upgrades.
var updatable = map[string]bool{
	statusCreateComplete: true, statusUpdateComplete: true, "RESUME_COMPLETE": true, "RESTORE_COMPLETE": true,
	"ROLLBACK_COMPLETE": true, "SNAPSHOT_COMPLETE": true, "CHECK_COMPLETE": true, "ADOPT_COMPLETE": true,
}

// apiError is a Magnum error response (ParsableErrorMiddleware's shape).
type apiError struct {
	status int
	title  string
	extra  map[string]any
}

func (e *apiError) Error() string { return e.title }

func errorf(status int, format string, args ...any) *apiError {
	return &apiError{status: status, title: fmt.Sprintf(format, args...)}
}

func writeMagnumError(w http.ResponseWriter, err *apiError) {
	code := "client"
	if err.status >= 500 {
		code = "server"
	}
	body := map[string]any{
		"request_id": "req-" + newUUID(), "code": code, "status": err.status,
		"title": strings.SplitN(err.title, ".", 2)[0], "detail": err.title, "links": []any{},
	}
	for k, v := range err.extra {
		body[k] = v
	}
	writeJSON(w, err.status, map[string]any{"errors": []any{body}})
}

// request is one authenticated Magnum call.
type request struct {
	w       http.ResponseWriter
	r       *http.Request
	region  *region
	token   *token
	version microversion
	base    string // http://host/magnum/<region>
}

func (q *request) project() string   { return q.token.project().Project }
func (q *request) projectID() string { return q.token.project().projectID }

func (e *Emulator) serveMagnum(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, "/magnum/")
	regionName, rest, _ := strings.Cut(rest, "/")
	reg, ok := e.regions[regionName]
	if !ok {
		writeMagnumError(w, errNoResource())
		return
	}
	base := baseURL(r) + "/magnum/" + regionName
	segs := strings.FieldsFunc(rest, func(c rune) bool { return c == '/' })
	if len(segs) == 0 && r.Method == http.MethodGet {
		writeJSON(w, http.StatusOK, map[string]any{
			"versions": []any{map[string]any{
				"status": "CURRENT", "min_version": e.min.String(), "max_version": e.max.String(), "id": "v1",
				"links": []any{map[string]any{"href": base + "/v1/", "rel": "self"}},
			}},
			"name":        "OpenStack Magnum API",
			"description": "Magnum is an OpenStack project which aims to provide container cluster management.",
		})
		return
	}
	if len(segs) == 0 || segs[0] != "v1" {
		writeMagnumError(w, errNoResource())
		return
	}
	t := e.validToken(r.Header.Get("X-Auth-Token"))
	if t == nil {
		unauthorized(w)
		return
	}
	q := &request{w: w, r: r, region: reg, token: t, base: base}
	if f := e.takeFault(FaultExpireTokens, q.project(), "", r); f != nil {
		e.ExpireTokens(q.project())
		unauthorized(w)
		return
	}
	if f := e.takeFault(FaultHTTPError, q.project(), "", r); f != nil {
		writeMagnumError(w, errorf(f.httpStatus(), "Injected fault: %s.", http.StatusText(f.httpStatus())))
		return
	}
	max := e.maxFor(q.project())
	v, err := e.negotiate(r.Header.Get("OpenStack-API-Version"), max)
	const service = "container-infra"
	w.Header().Set("OpenStack-API-Minimum-Version", service+" "+e.min.String())
	w.Header().Set("OpenStack-API-Maximum-Version", service+" "+max.String())
	w.Header().Set("Vary", "OpenStack-API-Version")
	if err != nil {
		err.extra = map[string]any{
			"min_version": service + " " + e.min.String(), "max_version": service + " " + max.String(),
			"code": "magnum.microversion-unsupported", "title": "Requested microversion is unsupported",
		}
		writeMagnumError(w, err)
		return
	}
	w.Header().Set("OpenStack-API-Version", service+" "+v.String())
	q.version = v
	if aerr := e.route(q, segs[1:]); aerr != nil {
		writeMagnumError(w, aerr)
	}
}

// negotiate parses the OpenStack-API-Version header the way
// magnum/api/controllers/versions.py does.
func (e *Emulator) negotiate(header string, max microversion) (microversion, *apiError) {
	if header == "" {
		return e.min, nil
	}
	svc, ver, ok := strings.Cut(strings.TrimSpace(header), " ")
	switch svc {
	case "container-infra", "container-infrastructure", "container-infrastructure-management":
	default:
		ok = false
	}
	if !ok {
		return microversion{}, errorf(http.StatusNotAcceptable, "Invalid service type for OpenStack-API-Version header")
	}
	if strings.EqualFold(strings.TrimSpace(ver), "latest") {
		return max, nil
	}
	v, err := parseMicroversion(ver)
	if err != nil {
		return microversion{}, errorf(http.StatusNotAcceptable, "Invalid value for OpenStack-API-Version header")
	}
	if v.less(e.min) || max.less(v) {
		return microversion{}, errorf(http.StatusNotAcceptable,
			"Version %s was requested but the minor version is not supported by this service. The supported version range is: [%s, %s].",
			v, e.min, max)
	}
	return v, nil
}

func (q *request) needVersion(min string, what string) *apiError {
	v, _ := parseMicroversion(min)
	if q.version.less(v) {
		return errorf(http.StatusNotAcceptable, "Version %s was requested but the requested API %s is not supported for this version.", q.version, what)
	}
	return nil
}

func (e *Emulator) route(q *request, segs []string) *apiError {
	m := q.r.Method
	if len(segs) == 0 {
		if m != http.MethodGet {
			return errorf(http.StatusMethodNotAllowed, "Method not allowed.")
		}
		links := func(kind string) []any {
			return []any{map[string]any{"href": q.base + "/v1/" + kind + "/", "rel": "self"}, map[string]any{"href": q.base + "/" + kind + "/", "rel": "bookmark"}}
		}
		writeJSON(q.w, http.StatusOK, map[string]any{
			"id":               "v1",
			"media_types":      []any{map[string]any{"base": "application/json", "type": "application/vnd.openstack.magnum.v1+json"}},
			"links":            []any{map[string]any{"href": q.base + "/v1/", "rel": "self"}},
			"clustertemplates": links("clustertemplates"), "clusters": links("clusters"),
			"certificates": links("certificates"), "mservices": links("mservices"),
		})
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.advance(q.region)
	switch segs[0] {
	case "clustertemplates":
		return collection[*clusterTemplate]{
			find: e.findTemplate, list: e.listTemplates, create: e.createTemplate,
			get: func(q *request, ct *clusterTemplate) *apiError {
				writeJSON(q.w, http.StatusOK, ct.view(q))
				return nil
			},
			patch: e.patchTemplate, del: e.deleteTemplate,
		}.route(q, segs)
	case "clusters":
		switch {
		case len(segs) <= 2:
			return collection[*cluster]{
				find: e.findCluster, list: e.listClusters, create: e.createCluster,
				get: func(q *request, c *cluster) *apiError {
					writeJSON(q.w, http.StatusOK, c.view(q, e, true, true))
					return nil
				},
				patch: e.patchCluster, del: e.deleteCluster,
			}.route(q, segs)
		case len(segs) == 4 && segs[2] == "actions" && segs[3] == "resize" && m == http.MethodPost:
			return e.onCluster(q, segs[1], "1.7", "resize", e.resizeCluster)
		case len(segs) == 4 && segs[2] == "actions" && segs[3] == "upgrade" && m == http.MethodPost:
			if q.version == (microversion{1, 7}) { // Magnum's stub for 1.7
				return errorf(http.StatusBadRequest, "Cluster Upgrade is not supported.")
			}
			return e.onCluster(q, segs[1], "1.7", "upgrade", e.upgradeCluster)
		case len(segs) >= 3 && segs[2] == "nodegroups":
			return e.onCluster(q, segs[1], "1.9", "nodegroups", func(q *request, c *cluster) *apiError {
				return e.routeNodegroups(q, c, segs[3:])
			})
		}
	case "certificates":
		switch {
		case len(segs) == 1 && m == http.MethodPost:
			return e.signCertificate(q)
		case len(segs) == 2 && m == http.MethodGet:
			return e.getCA(q, segs[1])
		case len(segs) == 2 && m == http.MethodPatch:
			return e.onCluster(q, segs[1], "1.5", "certificates rotate", accepted)
		}
	}
	return errNoResource()
}

// onCluster answers a request about the cluster ident names with handle;
// what is the API, and min the microversion that brought it: the version
// is checked before the cluster is looked up, as Magnum does.
func (e *Emulator) onCluster(q *request, ident, min, what string, handle func(q *request, c *cluster) *apiError) *apiError {
	if err := q.needVersion(min, what); err != nil {
		return err
	}
	c, err := e.findCluster(q, ident)
	if err != nil {
		return err
	}
	return handle(q, c)
}

// routeNodegroups answers segs, what follows clusters/ID/nodegroups.
func (e *Emulator) routeNodegroups(q *request, c *cluster, segs []string) *apiError {
	m := q.r.Method
	switch {
	case len(segs) == 0 && m == http.MethodGet:
		return e.listNodegroups(q, c)
	case len(segs) == 1 && m == http.MethodGet:
		ng, err := c.findNodegroup(segs[0])
		if err != nil {
			return err
		}
		writeJSON(q.w, http.StatusOK, ng.view(q, c, true))
		return nil
	case len(segs) == 1 && m == http.MethodPatch:
		return e.patchNodegroup(q, c, segs[0])
	case len(segs) == 0 && m == http.MethodPost:
		return e.createNodegroup(q, c)
	case len(segs) == 1 && m == http.MethodDelete:
		return e.deleteNodegroup(q, c, segs[0])
	}
	return errNoResource()
}

func errNoResource() *apiError {
	return errorf(http.StatusNotFound, "The resource could not be found.")
}

// collection routes the requests every Magnum collection of T answers:
// list, list with details, create, and get, patch and delete of the one
// item find names (Magnum's not-found and ambiguous-name errors are find's).
type collection[T any] struct {
	find            func(q *request, ident string) (T, *apiError)
	list            func(q *request, detail bool) *apiError
	create          func(q *request) *apiError
	get, patch, del func(q *request, item T) *apiError
}

// route answers segs, the collection's name and at most one more segment.
func (c collection[T]) route(q *request, segs []string) *apiError {
	m := q.r.Method
	switch {
	case len(segs) == 1 && m == http.MethodGet:
		return c.list(q, false)
	case len(segs) == 2 && segs[1] == "detail" && m == http.MethodGet:
		return c.list(q, true)
	case len(segs) == 1 && m == http.MethodPost:
		return c.create(q)
	case len(segs) != 2:
		return errNoResource()
	}
	var handle func(q *request, item T) *apiError
	switch m {
	case http.MethodGet:
		handle = c.get
	case http.MethodPatch:
		handle = c.patch
	case http.MethodDelete:
		handle = c.del
	default:
		return errNoResource()
	}
	item, err := c.find(q, segs[1])
	if err != nil {
		return err
	}
	return handle(q, item)
}

// decodeBody decodes a JSON body into v, rejecting unknown attributes the way
// WSME does.
func decodeBody(q *request, v any, arg string) *apiError {
	dec := json.NewDecoder(q.r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te):
			return errorf(http.StatusBadRequest, "Invalid input for field/attribute %s. Value: wrong type. Expected '%s', got '%s'", te.Field, te.Type, te.Value)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return errorf(http.StatusBadRequest, "Unknown attribute for argument %s: %s", arg, f)
		default:
			return errorf(http.StatusBadRequest, "Malformed request body: %v", err)
		}
	}
	return nil
}

func link(q *request, kind, id string) []any {
	return []any{
		map[string]any{"href": q.base + "/v1/" + kind + "/" + id, "rel": "self"},
		map[string]any{"href": q.base + "/" + kind + "/" + id, "rel": "bookmark"},
	}
}

func timeOrNil(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UTC().Format(magnumTime)
}

func strOrNil(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}

// labelsValue converts WSME MultiType label values (str, int, bool, float) to
// the strings Magnum stores.
func labelsValue(in map[string]any) (map[string]string, *apiError) {
	out := map[string]string{}
	for k, v := range in {
		switch x := v.(type) {
		case string:
			out[k] = x
		case bool:
			out[k] = strconv.FormatBool(x)
			if x {
				out[k] = "True"
			} else {
				out[k] = "False"
			}
		case float64:
			out[k] = strconv.FormatFloat(x, 'f', -1, 64)
		default:
			return nil, errorf(http.StatusBadRequest, "Invalid input for field/attribute labels. Value: '%v'. Wrong type.", v)
		}
	}
	return out, nil
}

// jsonPatchOp is one RFC 6902 operation as Magnum accepts it.
type jsonPatchOp struct {
	Op    string          `json:"op"`
	Path  string          `json:"path"`
	Value json.RawMessage `json:"value"`
}

func decodePatch(q *request) ([]jsonPatchOp, *apiError) {
	var ops []jsonPatchOp
	if err := decodeBody(q, &ops, "patch"); err != nil {
		return nil, err
	}
	for _, op := range ops {
		switch op.Op {
		case "add", "replace", "remove":
		default:
			return nil, errorf(http.StatusBadRequest, "Invalid input for field/attribute op. Value: '%s'. Value should be one of: add, replace, remove", op.Op)
		}
		if !strings.HasPrefix(op.Path, "/") {
			return nil, errorf(http.StatusBadRequest, "Invalid input for field/attribute path. Value: '%s'. Invalid path", op.Path)
		}
	}
	return ops, nil
}
