package sim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// The admin endpoint, JSON over HTTP:
//
//	GET  /        (or /status)  the provider's status: id, role, access point, mode, counters
//	GET  /calls                 the records of the last calls, oldest first
//	POST /mode                  switch the mode: the fields given replace the current
//	                            ones, the others stay; answers the new status
//
// A POST body such as {"down": true}, {"error_rate": 1, "error_code": 500},
// {"slow": true, "slow_delay_ms": 2000} or {"impair": {"loss_pct": 5,
// "burst": 3}} (an impairment given switches degraded on unless the body
// says otherwise; {"degraded": false} switches it off). Unknown fields and
// bad values are refused with 400 and a message naming the field.

// Status is what the admin endpoint's GET returns.
type Status struct {
	ID          string   `json:"id"`
	Role        string   `json:"role"`
	AccessPoint string   `json:"access_point"`
	Mode        Mode     `json:"mode"`
	Counters    Counters `json:"counters"`
}

// Status is the provider's current status.
func (p *Provider) Status() Status {
	return Status{ID: p.cfg.ID, Role: p.role, AccessPoint: p.AccessPoint(), Mode: p.Mode(), Counters: p.Counters()}
}

// startAdmin serves the admin endpoint on addr.
func (p *Provider) startAdmin(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("provider %s: admin listener %s: %w", p.cfg.ID, addr, err)
	}
	p.adminLn = ln
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", p.getStatus)
	mux.HandleFunc("GET /status", p.getStatus)
	mux.HandleFunc("GET /calls", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, p.Calls()) })
	mux.HandleFunc("POST /mode", p.postMode)
	p.admin = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	p.serve.Add(1)
	go func() {
		defer p.serve.Done()
		_ = p.admin.Serve(ln)
	}()
	return nil
}

func (p *Provider) getStatus(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, p.Status())
}

// postMode merges the fields of the body into the current mode.
func (p *Provider) postMode(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	m, err := mergeMode(p.Mode(), body)
	if err == nil {
		err = p.SetMode(m)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	writeJSON(w, http.StatusOK, p.Status())
}

// mergeMode applies a JSON body to a mode: fields present replace, others
// stay. An impairment given without "degraded" switches degraded on.
func mergeMode(cur Mode, body []byte) (Mode, error) {
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(body, &keys); err != nil {
		return cur, fmt.Errorf("%w: mode: %v", ErrProviderConfig, err)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	m := cur
	if err := dec.Decode(&m); err != nil {
		return cur, fmt.Errorf("%w: mode: %v", ErrProviderConfig, err)
	}
	if _, ok := keys["impair"]; ok {
		if _, ok := keys["degraded"]; !ok {
			m.Degraded = !m.Impair.Zero()
		}
	}
	return m, nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, map[string]string{"error": err.Error()})
}
