package openstackemu

import (
	"encoding/json"
	"net/http"
	"time"
)

// trust is a Keystone OS-TRUST trust: the trustor lets the trustee act in
// the trustor's project with some of the trustor's roles. Magnum creates one
// per cluster for its trustee user, and the node registries log in to Swift
// with the trustee's password and the trust id.
type trust struct {
	id               string
	trustor, trustee *User
	impersonation    bool
	roles            []string
	expires          time.Time // zero: never
}

func (tr *trust) view(r *http.Request) map[string]any {
	var expires any
	if !tr.expires.IsZero() {
		expires = tr.expires.UTC().Format(keystoneTime)
	}
	return map[string]any{
		"id": tr.id, "trustor_user_id": tr.trustor.id, "trustee_user_id": tr.trustee.id,
		"project_id": tr.trustor.projectID, "impersonation": tr.impersonation,
		"roles": roleRefs(tr.roles), "expires_at": expires, "remaining_uses": nil,
		"links": map[string]any{"self": baseURL(r) + "/identity/v3/OS-TRUST/trusts/" + tr.id},
	}
}

// trustFor returns the trust with id if user is its trustee and it has not
// expired.
func (e *Emulator) trustFor(id string, user *User) *trust {
	e.mu.Lock()
	defer e.mu.Unlock()
	tr := e.trusts[id]
	if tr == nil || tr.trustee != user || !tr.expires.IsZero() && !e.opts.Now().Before(tr.expires) {
		return nil
	}
	return tr
}

// serveTrusts is the OS-TRUST API for the trustor's own token (not a
// trust-scoped one):
//
//	POST   /v3/OS-TRUST/trusts      {"trust": {"trustor_user_id", "trustee_user_id", "project_id",
//	                                 "impersonation", "roles": [{"name"}|{"id"}], "expires_at"}}
//	GET    /v3/OS-TRUST/trusts/ID   for the trustor or the trustee
//	DELETE /v3/OS-TRUST/trusts/ID   for the trustor; the trust's tokens stop working
func (e *Emulator) serveTrusts(w http.ResponseWriter, r *http.Request, id string) {
	t := e.validToken(r.Header.Get("X-Auth-Token"))
	if t == nil {
		unauthorized(w)
		return
	}
	switch {
	case r.Method == http.MethodPost && id == "":
		e.createTrust(w, r, t)
	case (r.Method == http.MethodGet || r.Method == http.MethodDelete) && id != "":
		e.serveTrust(w, r, t, id)
	default:
		keystoneError(w, http.StatusMethodNotAllowed, "Method Not Allowed", "The method "+r.Method+" is not allowed for the requested URL.")
	}
}

// trustCreate is the body of POST /v3/OS-TRUST/trusts.
type trustCreate struct {
	TrustorUserID string  `json:"trustor_user_id"`
	TrusteeUserID string  `json:"trustee_user_id"`
	ProjectID     string  `json:"project_id"`
	Impersonation *bool   `json:"impersonation"`
	ExpiresAt     *string `json:"expires_at"`
	Roles         []struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"roles"`
}

func (e *Emulator) createTrust(w http.ResponseWriter, r *http.Request, t *token) {
	var req struct {
		Trust trustCreate `json:"trust"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Trust.Impersonation == nil || req.Trust.TrusteeUserID == "" {
		badRequest("A trust needs trustor_user_id, trustee_user_id and impersonation.").write(w)
		return
	}
	tr, fault := newTrust(t, req.Trust)
	if fault != nil {
		fault.write(w)
		return
	}
	e.mu.Lock()
	for _, u := range e.users {
		if u.id == req.Trust.TrusteeUserID {
			tr.trustee = u
		}
	}
	if tr.trustee != nil {
		e.trusts[tr.id] = tr
	}
	e.mu.Unlock()
	if tr.trustee == nil {
		notFound("Could not find user: " + req.Trust.TrusteeUserID + ".").write(w)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"trust": tr.view(r)})
}

// newTrust checks that the caller's token t may grant the trust in (its
// trustor, in its project, with roles it has) and returns the trust,
// without its trustee.
func newTrust(t *token, in trustCreate) (*trust, *keystoneFault) {
	if t.trust != nil || in.TrustorUserID != t.user.id {
		return nil, forbidden("Only the trustor may create a trust, with a token that is not trust-scoped.")
	}
	if in.ProjectID != t.user.projectID {
		return nil, forbidden("The trustor has no roles on project " + in.ProjectID + ".")
	}
	tr := &trust{id: randomHex(16), trustor: t.user, impersonation: *in.Impersonation}
	for _, ref := range in.Roles {
		name := ref.Name
		for _, have := range t.user.Roles {
			if ref.ID == projectID("role:"+have) {
				name = have
			}
		}
		if !t.user.hasRole(name) {
			return nil, forbidden("The trustor does not have role " + ref.Name + ref.ID + " on the project.")
		}
		tr.roles = append(tr.roles, name)
	}
	if len(tr.roles) == 0 {
		return nil, badRequest("At least one role should be specified.")
	}
	if in.ExpiresAt != nil {
		exp, err := time.Parse(time.RFC3339, *in.ExpiresAt)
		if err != nil {
			return nil, badRequest("Invalid input for field 'expires_at'.")
		}
		tr.expires = exp
	}
	return tr, nil
}

// serveTrust gets (trustor or trustee) or deletes (trustor) the trust id
// for the caller's token t.
func (e *Emulator) serveTrust(w http.ResponseWriter, r *http.Request, t *token, id string) {
	e.mu.Lock()
	tr := e.trusts[id]
	e.mu.Unlock()
	if tr == nil {
		notFound("Could not find trust: " + id + ".").write(w)
		return
	}
	if t.user != tr.trustor && (r.Method == http.MethodDelete || t.user != tr.trustee) {
		forbidden("You are not authorized to perform the requested action: identity:" + map[string]string{http.MethodGet: "get", http.MethodDelete: "delete"}[r.Method] + "_trust.").write(w)
		return
	}
	if r.Method == http.MethodGet {
		writeJSON(w, http.StatusOK, map[string]any{"trust": tr.view(r)})
		return
	}
	e.mu.Lock()
	delete(e.trusts, id)
	e.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}
