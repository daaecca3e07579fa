package openstackemu

import (
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"strings"
)

const keystoneTime = "2006-01-02T15:04:05.000000Z"

type authRequest struct {
	Auth struct {
		Identity struct {
			Methods  []string `json:"methods"`
			Password *struct {
				User nameRef `json:"user"`
			} `json:"password"`
			Token *struct {
				ID string `json:"id"`
			} `json:"token"`
			ApplicationCredential *struct {
				ID     string   `json:"id"`
				Name   string   `json:"name"`
				Secret string   `json:"secret"`
				User   *nameRef `json:"user"`
			} `json:"application_credential"`
		} `json:"identity"`
		Scope *struct {
			Project *nameRef `json:"project"`
			Trust   *struct {
				ID string `json:"id"`
			} `json:"OS-TRUST:trust"`
		} `json:"scope"`
	} `json:"auth"`
}

type nameRef struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Password string `json:"password"`
	Domain   *struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"domain"`
}

func (n nameRef) domain() string {
	if n.Domain == nil {
		return ""
	}
	if n.Domain.Name != "" {
		return n.Domain.Name
	}
	if strings.EqualFold(n.Domain.ID, "default") {
		return "Default"
	}
	return n.Domain.ID
}

func keystoneError(w http.ResponseWriter, code int, title, msg string) {
	writeJSON(w, code, map[string]any{"error": map[string]any{"code": code, "title": title, "message": msg}})
}

// keystoneFault is a Keystone error response that a step of a handler
// returns for the handler to write.
type keystoneFault struct {
	code       int
	title, msg string
}

func badRequest(msg string) *keystoneFault {
	return &keystoneFault{code: http.StatusBadRequest, title: "Bad Request", msg: msg}
}

func forbidden(msg string) *keystoneFault {
	return &keystoneFault{code: http.StatusForbidden, title: "Forbidden", msg: msg}
}

func notFound(msg string) *keystoneFault {
	return &keystoneFault{code: http.StatusNotFound, title: "Not Found", msg: msg}
}

func (f *keystoneFault) write(w http.ResponseWriter) { keystoneError(w, f.code, f.title, f.msg) }

func unauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Keystone uri="/identity"`)
	keystoneError(w, http.StatusUnauthorized, "Unauthorized", "The request you have made requires authentication.")
}

func (e *Emulator) serveKeystone(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/identity"), "/")
	switch {
	case path == "" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusMultipleChoices, map[string]any{"versions": map[string]any{"values": []any{e.keystoneVersion(r)}}})
	case path == "/v3" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, map[string]any{"version": e.keystoneVersion(r)})
	case path == "/v3/auth/tokens" && r.Method == http.MethodPost:
		e.issueToken(w, r)
	case path == "/v3/auth/tokens" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		e.validateToken(w, r)
	case path == "/v3/auth/tokens" && r.Method == http.MethodDelete:
		if e.validToken(r.Header.Get("X-Auth-Token")) == nil {
			unauthorized(w)
			return
		}
		e.mu.Lock()
		_, ok := e.tokens[r.Header.Get("X-Subject-Token")]
		delete(e.tokens, r.Header.Get("X-Subject-Token"))
		e.mu.Unlock()
		if !ok {
			keystoneError(w, http.StatusNotFound, "Not Found", "Could not find token.")
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case path == "/v3/auth/catalog" && r.Method == http.MethodGet:
		t := e.validToken(r.Header.Get("X-Auth-Token"))
		if t == nil {
			unauthorized(w)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"catalog": e.catalog(r, t.project().projectID), "links": selfLinks(r)})
	case strings.HasPrefix(path, "/v3/OS-TRUST/trusts"):
		e.serveTrusts(w, r, strings.TrimPrefix(strings.TrimPrefix(path, "/v3/OS-TRUST/trusts"), "/"))
	case strings.HasPrefix(path, "/v3/services") || strings.HasPrefix(path, "/v3/endpoints"):
		e.serveCatalogAdmin(w, r, strings.TrimPrefix(path, "/v3/"))
	default:
		keystoneError(w, http.StatusNotFound, "Not Found", "The resource could not be found.")
	}
}

// validateToken answers GET and HEAD /v3/auth/tokens. As Keystone's default
// policy (identity:validate_token) has it, a token may check itself, and a
// token with the admin or service role (auth_token's service user) may check
// any token. allow_expired returns a token that ran out but was not revoked;
// nocatalog leaves the catalog out.
func (e *Emulator) validateToken(w http.ResponseWriter, r *http.Request) {
	caller := e.validToken(r.Header.Get("X-Auth-Token"))
	if caller == nil {
		unauthorized(w)
		return
	}
	subjectID := r.Header.Get("X-Subject-Token")
	e.mu.Lock()
	subject, ok := e.tokens[subjectID]
	if ok && subject.trust != nil && e.trusts[subject.trust.id] != subject.trust {
		ok = false // the trust was deleted, and with it its tokens
	}
	e.mu.Unlock()
	if ok && !e.opts.Now().Before(subject.expires) && !queryTrue(r, "allow_expired") {
		ok = false
	}
	if !ok {
		keystoneError(w, http.StatusNotFound, "Not Found", "Could not find token: "+subjectID+".")
		return
	}
	if caller.user != subject.user && !caller.user.hasRole("admin") && !caller.user.hasRole("service") {
		keystoneError(w, http.StatusForbidden, "Forbidden", "You are not authorized to perform the requested action: identity:validate_token.")
		return
	}
	w.Header().Set("X-Subject-Token", subjectID)
	body := e.tokenBody(r, subject)
	if _, no := r.URL.Query()["nocatalog"]; no {
		delete(body, "catalog")
	}
	writeJSON(w, http.StatusOK, map[string]any{"token": body})
}

// queryTrue reports whether the query parameter name is set to a true value,
// the way Keystone reads boolean query parameters ("", "0", "false" are false).
func queryTrue(r *http.Request, name string) bool {
	v, ok := r.URL.Query()[name]
	if !ok {
		return false
	}
	s := strings.ToLower(v[0])
	return s != "0" && s != "false" && s != "no" && s != "off"
}

func (e *Emulator) keystoneVersion(r *http.Request) map[string]any {
	return map[string]any{
		"id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
		"links":       []any{map[string]any{"rel": "self", "href": baseURL(r) + "/identity/v3/"}},
		"media-types": []any{map[string]any{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}},
	}
}

func (e *Emulator) issueToken(w http.ResponseWriter, r *http.Request) {
	var req authRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		keystoneError(w, http.StatusBadRequest, "Bad Request", "Expecting to find auth in request body.")
		return
	}
	id := req.Auth.Identity
	var (
		user      *User
		method    string
		appCredID string
	)
	e.mu.Lock()
	switch {
	case contains(id.Methods, "application_credential") && id.ApplicationCredential != nil:
		ac := id.ApplicationCredential
		method = "application_credential"
		for _, u := range e.users {
			if u.AppCredSecret == "" {
				continue
			}
			match := ac.ID != "" && ac.ID == u.AppCredID ||
				ac.ID == "" && ac.Name != "" && ac.Name == u.AppCredName && ac.User != nil && (ac.User.ID == u.id || ac.User.Name == u.Name)
			if match && secretEqual(ac.Secret, u.AppCredSecret) {
				user, appCredID = u, u.AppCredID
			}
		}
	case contains(id.Methods, "password") && id.Password != nil:
		method = "password"
		pu := id.Password.User
		for _, u := range e.users {
			if (pu.ID != "" && pu.ID == u.id || pu.Name == u.Name && (pu.domain() == "" || pu.domain() == u.Domain)) &&
				secretEqual(pu.Password, u.Password) {
				user = u
			}
		}
	case contains(id.Methods, "token") && id.Token != nil:
		method = "token"
		if t, ok := e.tokens[id.Token.ID]; ok && e.opts.Now().Before(t.expires) {
			user = t.user
		}
	}
	e.mu.Unlock()
	if user == nil {
		unauthorized(w)
		return
	}
	if s := req.Auth.Scope; s != nil && s.Project != nil {
		if method == "application_credential" {
			keystoneError(w, http.StatusUnauthorized, "Unauthorized", "Application credentials cannot request a scope.")
			return
		}
		if (s.Project.ID != "" && s.Project.ID != user.projectID) || (s.Project.Name != "" && s.Project.Name != user.Project) {
			unauthorized(w)
			return
		}
	}
	t := &token{user: user, expires: e.opts.Now().Add(e.opts.TokenTTL), method: method, appCredID: appCredID}
	if s := req.Auth.Scope; s != nil && s.Trust != nil {
		if t.trust = e.trustFor(s.Trust.ID, user); t.trust == nil {
			keystoneError(w, http.StatusForbidden, "Forbidden", "The user is not a trustee of trust "+s.Trust.ID+", or it does not exist.")
			return
		}
	}
	if f := e.takeFault(FaultKeystoneError, t.project().Project, "", r); f != nil {
		keystoneError(w, f.httpStatus(), http.StatusText(f.httpStatus()), "injected fault")
		return
	}
	tid := "gAAAAA" + randomHex(32)
	e.mu.Lock()
	e.tokens[tid] = t
	e.mu.Unlock()
	w.Header().Set("X-Subject-Token", tid)
	writeJSON(w, http.StatusCreated, map[string]any{"token": e.tokenBody(r, t)})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func secretEqual(a, b string) bool {
	return b != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

func domainRef(name string) map[string]any {
	if name == "Default" {
		return map[string]any{"id": "default", "name": name}
	}
	return map[string]any{"id": strings.ToLower(name), "name": name}
}

func (e *Emulator) tokenBody(r *http.Request, t *token) map[string]any {
	u, p := t.user, t.project()
	roles := u.roleRefs()
	if tr := t.trust; tr != nil {
		if tr.impersonation {
			u = tr.trustor
		}
		roles = roleRefs(tr.roles)
	}
	body := map[string]any{
		"methods":    []string{t.method},
		"user":       map[string]any{"id": u.id, "name": u.Name, "domain": domainRef(u.Domain), "password_expires_at": nil},
		"audit_ids":  []string{randomHex(11)},
		"expires_at": t.expires.UTC().Format(keystoneTime),
		"issued_at":  t.expires.Add(-e.opts.TokenTTL).UTC().Format(keystoneTime),
		"project":    map[string]any{"id": p.projectID, "name": p.Project, "domain": domainRef(p.Domain)},
		"is_domain":  false,
		"roles":      roles,
		"catalog":    e.catalog(r, p.projectID),
	}
	if t.appCredID != "" {
		body["application_credential"] = map[string]any{"id": t.appCredID, "name": u.AppCredName, "restricted": true}
	}
	if tr := t.trust; tr != nil {
		body["OS-TRUST:trust"] = map[string]any{
			"id": tr.id, "impersonation": tr.impersonation,
			"trustor_user": map[string]any{"id": tr.trustor.id}, "trustee_user": map[string]any{"id": tr.trustee.id},
		}
	}
	return body
}

// validToken returns the token for id if it exists and has not expired.
func (e *Emulator) validToken(id string) *token {
	if id == "" {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	t, ok := e.tokens[id]
	if !ok || !e.opts.Now().Before(t.expires) || t.trust != nil && e.trusts[t.trust.id] != t.trust {
		return nil
	}
	return t
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
