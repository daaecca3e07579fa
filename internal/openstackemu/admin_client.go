package openstackemu

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
)

// Admin drives the fault-injection API of an emulator running as a separate
// process (SLIPWAY_TEST_OS_EMULATOR_ADMIN), for tests.
type Admin struct {
	// URL is the admin base URL, e.g. http://127.0.0.1:5000/admin.
	URL string
}

func (a Admin) post(ctx context.Context, path string, body, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.URL+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("emulator admin %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		var e struct{ Error string }
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return fmt.Errorf("emulator admin %s: %s: %s", path, resp.Status, e.Error)
	}
	if out != nil {
		return json.NewDecoder(resp.Body).Decode(out)
	}
	return nil
}

// AddUser creates a user and its project; tests use a fresh project each so
// their clusters and faults stay apart.
func (a Admin) AddUser(ctx context.Context, u User) error { return a.post(ctx, "/users", u, nil) }

// Inject adds a fault.
func (a Admin) Inject(ctx context.Context, f Fault) error { return a.post(ctx, "/faults", f, nil) }

// ExpireTokens expires the project's tokens now.
func (a Admin) ExpireTokens(ctx context.Context, project string) error {
	return a.post(ctx, "/tokens/expire", map[string]string{"project": project}, nil)
}

// Faults lists the project's faults that have not fired yet.
func (a Admin) Faults(ctx context.Context, project string) ([]Fault, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.URL+"/faults?project="+project, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out struct{ Faults []Fault }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("emulator admin /faults: %w", err)
	}
	return out.Faults, nil
}
