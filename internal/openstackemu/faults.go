package openstackemu

import (
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"strings"
)

// FaultKind names a failure the emulator can be told to produce.
type FaultKind string

// The fault kinds. Cluster-operation faults apply to the next matching
// operation; request faults to the next matching requests.
const (
	// FaultCreateFailed ends the next cluster create with CREATE_FAILED,
	// StatusReason and per-nodegroup Faults.
	FaultCreateFailed FaultKind = "create_failed"
	// FaultUpdateFailed ends the next resize/upgrade/update with UPDATE_FAILED.
	FaultUpdateFailed FaultKind = "update_failed"
	// FaultDeleteFailed ends the next delete with DELETE_FAILED.
	FaultDeleteFailed FaultKind = "delete_failed"
	// FaultStuck keeps the next operation *_IN_PROGRESS forever.
	FaultStuck FaultKind = "stuck"
	// FaultHTTPError answers matching Magnum requests with Status (default 503).
	FaultHTTPError FaultKind = "http_error"
	// FaultKeystoneError answers token requests with Status (default 503).
	FaultKeystoneError FaultKind = "keystone_error"
	// FaultExpireTokens expires the project's tokens when a matching Magnum
	// request arrives (after skipping After of them): token expiry mid-wait.
	FaultExpireTokens FaultKind = "expire_tokens"
	// FaultMicroversion lowers the maximum microversion served to the
	// project to MaxMicroversion, as an older Magnum would.
	FaultMicroversion FaultKind = "microversion"
)

// Fault is one injected failure. Empty match fields match everything.
type Fault struct {
	Kind FaultKind `json:"kind"`
	// Project limits the fault to requests by users of this project, so
	// tests sharing one emulator do not disturb each other.
	Project string `json:"project,omitempty"`
	// Cluster limits cluster-operation faults to the cluster of this name.
	Cluster string `json:"cluster,omitempty"`
	// Method and PathContains limit request faults.
	Method       string `json:"method,omitempty"`
	PathContains string `json:"path_contains,omitempty"`
	// Status is the HTTP status for http_error / keystone_error.
	Status int `json:"status,omitempty"`
	// Count is how many times the fault fires (default 1, -1 forever).
	Count int `json:"count,omitempty"`
	// After skips this many matching requests before firing.
	After int `json:"after,omitempty"`
	// StatusReason and Faults describe a failed cluster operation.
	StatusReason string            `json:"status_reason,omitempty"`
	Faults       map[string]string `json:"faults,omitempty"`
	// MaxMicroversion is the maximum for FaultMicroversion, e.g. "1.8".
	MaxMicroversion string `json:"max_microversion,omitempty"`
}

func (f *Fault) httpStatus() int {
	if f.Status == 0 {
		return http.StatusServiceUnavailable
	}
	return f.Status
}

// Inject adds a fault.
func (e *Emulator) Inject(f Fault) error {
	switch f.Kind {
	case FaultCreateFailed, FaultUpdateFailed, FaultDeleteFailed, FaultStuck, FaultHTTPError, FaultKeystoneError, FaultExpireTokens:
	case FaultMicroversion:
		if _, err := parseMicroversion(f.MaxMicroversion); err != nil {
			return fmt.Errorf("fault %s: %w", f.Kind, err)
		}
		f.Count = -1
	default:
		return fmt.Errorf("unknown fault kind %q", f.Kind)
	}
	if f.Count == 0 {
		f.Count = 1
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.faults = append(e.faults, &f)
	return nil
}

// ClearFaults removes the faults of project (all faults if empty).
func (e *Emulator) ClearFaults(project string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	kept := e.faults[:0]
	for _, f := range e.faults {
		if project != "" && f.Project != project {
			kept = append(kept, f)
		}
	}
	e.faults = kept
}

// Faults returns the faults of project (all if empty) that have not fired
// (or still fire).
func (e *Emulator) Faults(project string) []Fault {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := []Fault{}
	for _, f := range e.faults {
		if project == "" || f.Project == project {
			out = append(out, *f)
		}
	}
	return out
}

// takeFault consumes and returns the first fault of kind matching the
// request, or nil.
func (e *Emulator) takeFault(kind FaultKind, project, cluster string, r *http.Request) *Fault {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.takeFaultLocked(kind, project, cluster, r)
}

func (e *Emulator) takeFaultLocked(kind FaultKind, project, cluster string, r *http.Request) *Fault {
	for i, f := range e.faults {
		if f.Kind != kind || f.Project != "" && f.Project != project || f.Cluster != "" && f.Cluster != cluster {
			continue
		}
		if r != nil && (f.Method != "" && !strings.EqualFold(f.Method, r.Method) || f.PathContains != "" && !strings.Contains(r.URL.Path, f.PathContains)) {
			continue
		}
		if f.After > 0 {
			f.After--
			continue
		}
		if f.Count > 0 {
			f.Count--
			if f.Count == 0 {
				e.faults = append(e.faults[:i:i], e.faults[i+1:]...)
			}
		}
		c := *f
		return &c
	}
	return nil
}

// maxFor returns the highest microversion served to project.
func (e *Emulator) maxFor(project string) microversion {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, f := range e.faults {
		if f.Kind == FaultMicroversion && (f.Project == "" || f.Project == project) {
			v, _ := parseMicroversion(f.MaxMicroversion)
			return v
		}
	}
	return e.max
}

// serveAdmin is the fault-injection API for tests that run the emulator as
// a separate process:
//
//	POST   /admin/faults          a Fault as JSON
//	GET    /admin/faults?project= the faults not yet fired
//	DELETE /admin/faults?project= clear faults
//	POST   /admin/users           a User as JSON: a fresh user and project
//	POST   /admin/tokens/expire   {"project": "..."}: expire tokens now
//	GET    /admin/ca              the CA certificate (PEM)
func (e *Emulator) serveAdmin(w http.ResponseWriter, r *http.Request) {
	bad := func(err error) {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": err.Error()})
	}
	switch p := strings.TrimSuffix(r.URL.Path, "/"); {
	case p == "/admin/faults" && r.Method == http.MethodPost:
		var f Fault
		if err := strictDecode(r, &f); err != nil {
			bad(err)
			return
		}
		if err := e.Inject(f); err != nil {
			bad(err)
			return
		}
		writeJSON(w, http.StatusCreated, f)
	case p == "/admin/faults" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, map[string]any{"faults": e.Faults(r.URL.Query().Get("project"))})
	case p == "/admin/faults" && r.Method == http.MethodDelete:
		e.ClearFaults(r.URL.Query().Get("project"))
		w.WriteHeader(http.StatusNoContent)
	case p == "/admin/users" && r.Method == http.MethodPost:
		var u User
		if err := strictDecode(r, &u); err != nil {
			bad(err)
			return
		}
		got, err := e.AddUser(u)
		if err != nil {
			bad(err)
			return
		}
		writeJSON(w, http.StatusCreated, map[string]any{"user": got, "user_id": got.id, "project_id": got.projectID})
	case p == "/admin/tokens/expire" && r.Method == http.MethodPost:
		var req struct {
			Project string `json:"project"`
		}
		if err := strictDecode(r, &req); err != nil {
			bad(err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"expired": e.ExpireTokens(req.Project)})
	case p == "/admin/ca" && r.Method == http.MethodGet:
		w.Header().Set("Content-Type", "application/x-pem-file")
		// ?region=NAME: the CA of that region's clusters.
		_ = pem.Encode(w, &pem.Block{Type: "CERTIFICATE", Bytes: e.site(r.URL.Query().Get("region")).CACert.Raw})
	default:
		writeJSON(w, http.StatusNotFound, map[string]any{"error": "no such admin endpoint: " + r.Method + " " + r.URL.Path})
	}
}

func strictDecode(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decoding request body: %w", err)
	}
	return nil
}
