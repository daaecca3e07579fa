package openstackemu

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
)

// service is one entry of the Keystone service catalog.
type service struct {
	id, typ, name, description string
	enabled                    bool
	endpoints                  []*endpoint
}

// endpoint is one URL of a service. A URL that starts with "/" is served by
// the emulator itself and resolved against the request's host, so the
// catalog is right on whatever address the emulator listens. A URL may hold
// Keystone's substitutions $(project_id)s, %(project_id)s and their
// tenant_id twins (Swift's AUTH_$(project_id)s accounts).
type endpoint struct {
	id, iface, region, url string
	enabled                bool
}

var interfaces = []string{"public", "internal", "admin"}

// builtinServices is the catalog of what the emulator serves: identity and
// container-infra in every region, on all three interfaces (auth_token
// looks identity up on "internal").
func builtinServices(regions []string) []*service {
	identity := &service{id: projectID("service:identity"), typ: "identity", name: "keystone", enabled: true}
	magnum := &service{id: projectID("service:magnum"), typ: "container-infra", name: "magnum", enabled: true}
	for _, r := range regions {
		for _, iface := range interfaces {
			identity.endpoints = append(identity.endpoints, &endpoint{id: projectID("endpoint:identity:" + r + ":" + iface), iface: iface, region: r, url: "/identity/v3", enabled: true})
			magnum.endpoints = append(magnum.endpoints, &endpoint{id: projectID("endpoint:magnum:" + r + ":" + iface), iface: iface, region: r, url: "/magnum/" + r + "/v1", enabled: true})
		}
	}
	return []*service{identity, magnum}
}

// resolve returns the endpoint's URL for a token scoped to project (an id;
// "" leaves the substitutions as they are).
func (ep *endpoint) resolve(r *http.Request, project string) string {
	url := ep.url
	if strings.HasPrefix(url, "/") {
		url = baseURL(r) + url
	}
	if project == "" {
		return url
	}
	return strings.NewReplacer(
		"$(project_id)s", project, "%(project_id)s", project,
		"$(tenant_id)s", project, "%(tenant_id)s", project,
	).Replace(url)
}

// catalog is the service catalog of a token scoped to project (an id):
// enabled services with their enabled endpoints.
func (e *Emulator) catalog(r *http.Request, project string) []any {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := []any{}
	for _, s := range e.services {
		if !s.enabled {
			continue
		}
		eps := []any{}
		for _, ep := range s.endpoints {
			if ep.enabled {
				eps = append(eps, map[string]any{"id": ep.id, "interface": ep.iface, "region": ep.region, "region_id": ep.region, "url": ep.resolve(r, project)})
			}
		}
		out = append(out, map[string]any{"id": s.id, "type": s.typ, "name": s.name, "endpoints": eps})
	}
	return out
}

func selfLinks(r *http.Request) map[string]any {
	return map[string]any{"self": baseURL(r) + r.URL.RequestURI(), "previous": nil, "next": nil}
}

func (s *service) view(r *http.Request) map[string]any {
	return map[string]any{
		"id": s.id, "type": s.typ, "name": s.name, "description": s.description, "enabled": s.enabled,
		"links": map[string]any{"self": baseURL(r) + "/identity/v3/services/" + s.id},
	}
}

func (ep *endpoint) view(r *http.Request, s *service) map[string]any {
	return map[string]any{
		"id": ep.id, "interface": ep.iface, "region": ep.region, "region_id": ep.region, "service_id": s.id,
		"url": ep.resolve(r, ""), "enabled": ep.enabled,
		"links": map[string]any{"self": baseURL(r) + "/identity/v3/endpoints/" + ep.id},
	}
}

// serveCatalogAdmin is Keystone's catalog API, the calls a deployment tool
// makes to register a service (`openstack service create`, `openstack
// endpoint create`), for a token with the admin role:
//
//	POST   /v3/services                {"service": {"type", "name", "description", "enabled"}}
//	GET    /v3/services[?type=&name=]
//	DELETE /v3/services/ID              with its endpoints
//	POST   /v3/endpoints               {"endpoint": {"service_id", "interface", "region_id", "url", "enabled"}}
//	GET    /v3/endpoints[?service_id=&interface=&region_id=]
//	DELETE /v3/endpoints/ID
func (e *Emulator) serveCatalogAdmin(w http.ResponseWriter, r *http.Request, path string) {
	t := e.validToken(r.Header.Get("X-Auth-Token"))
	if t == nil {
		unauthorized(w)
		return
	}
	kind, id, _ := strings.Cut(path, "/")
	action := catalogAction(r.Method, id)
	if action == "" {
		keystoneError(w, http.StatusMethodNotAllowed, "Method Not Allowed", "The method "+r.Method+" is not allowed for the requested URL.")
		return
	}
	if !t.user.hasRole("admin") {
		forbidden("You are not authorized to perform the requested action: identity:" + action + "_" + strings.TrimSuffix(kind, "s") + ".").write(w)
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	switch kind + " " + action {
	case "services create":
		e.createService(w, r)
	case "services list":
		e.listServices(w, r)
	case "services get", "services delete":
		e.serveService(w, r, id, action)
	case "endpoints create":
		e.createEndpoint(w, r)
	case "endpoints list":
		e.listEndpoints(w, r)
	case "endpoints get", "endpoints delete":
		e.serveEndpoint(w, r, id, action)
	default:
		notFound("The resource could not be found.").write(w)
	}
}

// catalogAction is the policy verb (create, list, get, delete) of a catalog
// call with method on a collection (id "") or one item; "" for a method the
// URL does not allow.
func catalogAction(method, id string) string {
	switch {
	case method == http.MethodPost && id == "":
		return "create"
	case method == http.MethodGet && id == "":
		return "list"
	case method == http.MethodGet:
		return "get"
	case method == http.MethodDelete && id != "":
		return "delete"
	}
	return ""
}

// queryMatches says whether v passes a list's filter ?key=: there is none,
// or it is v.
func queryMatches(q url.Values, key, v string) bool {
	return q.Get(key) == "" || q.Get(key) == v
}

func (e *Emulator) createService(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Service struct {
			Type        string `json:"type"`
			Name        string `json:"name"`
			Description string `json:"description"`
			Enabled     *bool  `json:"enabled"`
		} `json:"service"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Service.Type == "" {
		badRequest("Invalid input for field 'type': a service needs a type.").write(w)
		return
	}
	s := &service{id: randomHex(16), typ: req.Service.Type, name: req.Service.Name, description: req.Service.Description, enabled: req.Service.Enabled == nil || *req.Service.Enabled}
	e.services = append(e.services, s)
	writeJSON(w, http.StatusCreated, map[string]any{"service": s.view(r)})
}

func (e *Emulator) listServices(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	list := []any{}
	for _, s := range e.services {
		if queryMatches(q, "type", s.typ) && queryMatches(q, "name", s.name) {
			list = append(list, s.view(r))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"services": list, "links": selfLinks(r)})
}

// serveService gets or deletes (action) the service id.
func (e *Emulator) serveService(w http.ResponseWriter, r *http.Request, id, action string) {
	for i, s := range e.services {
		if s.id != id {
			continue
		}
		if action == "get" {
			writeJSON(w, http.StatusOK, map[string]any{"service": s.view(r)})
			return
		}
		e.services = append(e.services[:i], e.services[i+1:]...)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	notFound("Could not find service: " + id + ".").write(w)
}

// endpointCreate is the body of POST /v3/endpoints.
type endpointCreate struct {
	ServiceID string `json:"service_id"`
	Interface string `json:"interface"`
	Region    string `json:"region"`
	RegionID  string `json:"region_id"`
	URL       string `json:"url"`
	Enabled   *bool  `json:"enabled"`
}

// parseEndpointCreate reads and checks an endpoint to create; region_id
// falls back to the older region.
func (e *Emulator) parseEndpointCreate(r *http.Request) (endpointCreate, *keystoneFault) {
	var req struct {
		Endpoint endpointCreate `json:"endpoint"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		return endpointCreate{}, badRequest("Expecting to find endpoint in request body.")
	}
	in := req.Endpoint
	if in.RegionID == "" {
		in.RegionID = in.Region
	}
	switch {
	case !contains(interfaces, in.Interface):
		return in, badRequest("Invalid input for field 'interface': '" + in.Interface + "' is not one of public, internal, admin.")
	case in.URL == "":
		return in, badRequest("Invalid input for field 'url': an endpoint needs a URL.")
	case in.RegionID != "" && e.regions[in.RegionID] == nil:
		return in, notFound("Could not find region: " + in.RegionID + ".")
	}
	return in, nil
}

func (e *Emulator) createEndpoint(w http.ResponseWriter, r *http.Request) {
	in, fault := e.parseEndpointCreate(r)
	if fault != nil {
		fault.write(w)
		return
	}
	for _, s := range e.services {
		if s.id == in.ServiceID {
			ep := &endpoint{id: randomHex(16), iface: in.Interface, region: in.RegionID, url: in.URL, enabled: in.Enabled == nil || *in.Enabled}
			s.endpoints = append(s.endpoints, ep)
			writeJSON(w, http.StatusCreated, map[string]any{"endpoint": ep.view(r, s)})
			return
		}
	}
	notFound("Could not find service: " + in.ServiceID + ".").write(w)
}

func (e *Emulator) listEndpoints(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	list := []any{}
	for _, s := range e.services {
		for _, ep := range s.endpoints {
			if queryMatches(q, "service_id", s.id) && queryMatches(q, "interface", ep.iface) && queryMatches(q, "region_id", ep.region) {
				list = append(list, ep.view(r, s))
			}
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"endpoints": list, "links": selfLinks(r)})
}

// serveEndpoint gets or deletes (action) the endpoint id.
func (e *Emulator) serveEndpoint(w http.ResponseWriter, r *http.Request, id, action string) {
	for _, s := range e.services {
		for i, ep := range s.endpoints {
			if ep.id != id {
				continue
			}
			if action == "get" {
				writeJSON(w, http.StatusOK, map[string]any{"endpoint": ep.view(r, s)})
				return
			}
			s.endpoints = append(s.endpoints[:i], s.endpoints[i+1:]...)
			w.WriteHeader(http.StatusNoContent)
			return
		}
	}
	notFound("Could not find endpoint: " + id + ".").write(w)
}
