package openstackemu

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// templateFields are a cluster template's writable attributes and their
// kinds, from magnum/api/controllers/v1/cluster_template.py.
var templateFields = map[string]string{
	"name": "str", "coe": "str", "image_id": "str", "flavor_id": "str", "master_flavor_id": "str",
	"dns_nameserver": "str", "keypair_id": "str", "external_network_id": "str", "fixed_network": "str",
	"fixed_subnet": "str", "network_driver": "str", "apiserver_port": "int", "docker_volume_size": "int",
	"cluster_distro": "str", "http_proxy": "str", "https_proxy": "str", "no_proxy": "str",
	"volume_driver": "str", "registry_enabled": "bool", "labels": "labels", "tls_disabled": "bool",
	"public": "bool", "server_type": "str", "insecure_registry": "str", "docker_storage_driver": "str",
	"master_lb_enabled": "bool", "floating_ip_enabled": "bool", "hidden": "bool", "tags": "str", "driver": "str",
}

var templateDefaults = map[string]any{
	"registry_enabled": false, "tls_disabled": false, "public": false, "server_type": "vm",
	"master_lb_enabled": false, "floating_ip_enabled": true, "hidden": false,
}

type clusterTemplate struct {
	uuid, projectID, userID string
	attrs                   map[string]any // validated attributes; labels as map[string]string
	createdAt               time.Time
	updatedAt               *time.Time
}

func (ct *clusterTemplate) name() string { s, _ := ct.attrs["name"].(string); return s }

func (ct *clusterTemplate) labels() map[string]string {
	l, _ := ct.attrs["labels"].(map[string]string)
	return l
}

func (ct *clusterTemplate) str(k string) *string {
	if s, ok := ct.attrs[k].(string); ok {
		return &s
	}
	return nil
}

func (ct *clusterTemplate) boolean(k string) bool { b, _ := ct.attrs[k].(bool); return b }

func (ct *clusterTemplate) view(q *request) map[string]any {
	out := map[string]any{}
	for k := range templateFields {
		out[k] = ct.attrs[k]
	}
	if out["labels"] == nil {
		out["labels"] = map[string]string{}
	}
	out["uuid"] = ct.uuid
	out["project_id"] = ct.projectID
	out["user_id"] = ct.userID
	out["created_at"] = ct.createdAt.UTC().Format(magnumTime)
	out["updated_at"] = timeOrNil(ct.updatedAt)
	out["links"] = link(q, "clustertemplates", ct.uuid)
	return out
}

// setAttrs validates raw JSON attributes and stores them.
func setTemplateAttrs(attrs map[string]any, raw map[string]json.RawMessage) *apiError {
	for k, v := range raw {
		kind, ok := templateFields[k]
		if !ok {
			return errorf(http.StatusBadRequest, "Unknown attribute for argument cluster_template: %s", k)
		}
		if string(v) == "null" {
			delete(attrs, k)
			continue
		}
		var err error
		switch kind {
		case "str":
			var s string
			if err = json.Unmarshal(v, &s); err == nil {
				if s == "" || len(s) > 255 {
					return errorf(http.StatusBadRequest, "Invalid input for field/attribute %s. Value: '%s'. Value should have a length between 1 and 255", k, s)
				}
				attrs[k] = s
			}
		case "int":
			var n int
			if err = json.Unmarshal(v, &n); err == nil {
				attrs[k] = n
			}
		case "bool":
			var b bool
			if err = json.Unmarshal(v, &b); err == nil {
				attrs[k] = b
			}
		case "labels":
			var m map[string]any
			if err = json.Unmarshal(v, &m); err == nil {
				l, aerr := labelsValue(m)
				if aerr != nil {
					return aerr
				}
				attrs[k] = l
			}
		}
		if err != nil {
			return errorf(http.StatusBadRequest, "Invalid input for field/attribute %s. Value: '%s'. Wrong type. Expected '%s'", k, string(v), kind)
		}
	}
	return nil
}

func (e *Emulator) createTemplate(q *request) *apiError {
	var raw map[string]json.RawMessage
	if err := decodeBody(q, &raw, "cluster_template"); err != nil {
		return err
	}
	attrs := map[string]any{}
	for k, v := range templateDefaults {
		attrs[k] = v
	}
	if err := setTemplateAttrs(attrs, raw); err != nil {
		return err
	}
	if _, ok := attrs["coe"]; !ok {
		return errorf(http.StatusBadRequest, "Invalid input for field/attribute coe. Value: 'None'. Mandatory field missing.")
	}
	switch attrs["coe"] {
	case "kubernetes", "swarm", "swarm-mode", "mesos", "dcos":
	default:
		return errorf(http.StatusBadRequest, "Invalid input for field/attribute coe. Value: '%v'. Value should be one of: kubernetes, swarm, swarm-mode, mesos, dcos", attrs["coe"])
	}
	image, ok := attrs["image_id"].(string)
	if !ok {
		return errorf(http.StatusBadRequest, "Invalid input for field/attribute image_id. Value: 'None'. Mandatory field missing.")
	}
	if _, ok := attrs["cluster_distro"]; !ok {
		// Magnum reads os_distro from the Glance image.
		distro := "fedora-coreos"
		if strings.Contains(strings.ToLower(image), "atomic") {
			distro = "fedora-atomic"
		} else if strings.Contains(strings.ToLower(image), "ubuntu") {
			distro = "ubuntu"
		}
		attrs["cluster_distro"] = distro
	}
	if port, ok := attrs["apiserver_port"].(int); ok && (port < 1024 || port > 65535) {
		return errorf(http.StatusBadRequest, "Invalid input for field/attribute apiserver_port. Value: '%d'. Value should be between 1024 and 65535", port)
	}
	if size, ok := attrs["docker_volume_size"].(int); ok && size < 1 {
		return errorf(http.StatusBadRequest, "Invalid input for field/attribute docker_volume_size. Value: '%d'. Value should be greater or equal to 1", size)
	}
	if _, ok := attrs["name"]; !ok {
		attrs["name"] = "clustertemplate-" + randomHex(3)
	}
	if _, ok := attrs["labels"]; !ok {
		attrs["labels"] = map[string]string{}
	}
	ct := &clusterTemplate{uuid: newUUID(), projectID: q.projectID(), userID: q.token.user.id, attrs: attrs, createdAt: e.opts.Now()}
	q.region.templates = append(q.region.templates, ct)
	q.w.Header().Set("Location", q.base+"/v1/clustertemplates/"+ct.uuid)
	writeJSON(q.w, http.StatusCreated, ct.view(q))
	return nil
}

func (e *Emulator) visibleTemplates(q *request) []*clusterTemplate {
	var out []*clusterTemplate
	for _, ct := range q.region.templates {
		if ct.projectID == q.projectID() || ct.boolean("public") {
			out = append(out, ct)
		}
	}
	return out
}

func (e *Emulator) findTemplate(q *request, ident string) (*clusterTemplate, *apiError) {
	return findOne("ClusterTemplate", ident, e.visibleTemplates(q), func(ct *clusterTemplate) (string, string) { return ct.uuid, ct.name() })
}

var templateSummary = []string{"uuid", "name", "tags", "hidden"}

func (e *Emulator) listTemplates(q *request, detail bool) *apiError {
	items := []any{}
	for _, ct := range e.visibleTemplates(q) {
		v := ct.view(q)
		if !detail {
			short := map[string]any{"links": v["links"]}
			for _, k := range templateSummary {
				short[k] = v[k]
			}
			v = short
		}
		items = append(items, v)
	}
	writeJSON(q.w, http.StatusOK, map[string]any{"clustertemplates": items, "next": nil})
	return nil
}

func (e *Emulator) templateInUse(q *request, ct *clusterTemplate) bool {
	for _, c := range q.region.clusters {
		if c.templateID == ct.uuid {
			return true
		}
	}
	return false
}

func (e *Emulator) patchTemplate(q *request, ct *clusterTemplate) *apiError {
	ops, err := decodePatch(q)
	if err != nil {
		return err
	}
	raw := map[string]json.RawMessage{}
	onlyPublic := true
	for _, op := range ops {
		field, sub, _ := strings.Cut(strings.TrimPrefix(op.Path, "/"), "/")
		if field != "public" && field != "hidden" {
			onlyPublic = false
		}
		switch {
		case field == "labels" && sub != "":
			l := map[string]string{}
			for k, v := range ct.labels() {
				l[k] = v
			}
			if op.Op == "remove" {
				delete(l, sub)
			} else {
				var s string
				if json.Unmarshal(op.Value, &s) != nil {
					return errorf(http.StatusBadRequest, "Invalid input for field/attribute labels. Wrong type.")
				}
				l[sub] = s
			}
			b, _ := json.Marshal(l)
			raw["labels"] = b
		case op.Op == "remove":
			raw[field] = json.RawMessage("null")
		default:
			raw[field] = op.Value
		}
	}
	if !onlyPublic && e.templateInUse(q, ct) {
		return errorf(http.StatusBadRequest, "ClusterTemplate %s is referenced by one or multiple clusters.", ct.uuid)
	}
	attrs := map[string]any{}
	for k, v := range ct.attrs {
		attrs[k] = v
	}
	if err := setTemplateAttrs(attrs, raw); err != nil {
		return err
	}
	ct.attrs = attrs
	now := e.opts.Now()
	ct.updatedAt = &now
	writeJSON(q.w, http.StatusOK, ct.view(q))
	return nil
}

func (e *Emulator) deleteTemplate(q *request, ct *clusterTemplate) *apiError {
	if e.templateInUse(q, ct) {
		return errorf(http.StatusBadRequest, "ClusterTemplate %s is referenced by one or multiple clusters.", ct.uuid)
	}
	kept := q.region.templates[:0]
	for _, o := range q.region.templates {
		if o != ct {
			kept = append(kept, o)
		}
	}
	q.region.templates = kept
	q.w.WriteHeader(http.StatusNoContent)
	return nil
}
