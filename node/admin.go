package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/callmesh/callmesh/gossip"
	"github.com/callmesh/callmesh/node/b2bua"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NodeInfo is the admin API's description of a node (/api/v1/node, and the
// "node" object of `callmesh status --json`). Fields are added, never renamed.
type NodeInfo struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	SIP         string    `json:"sip"`
	Admin       string    `json:"admin"`
	P2P         []string  `json:"p2p"`
	Version     string    `json:"version"`
	Incarnation uint64    `json:"incarnation"`
	Started     time.Time `json:"started"`
	Capacity    int       `json:"capacity"`
	ActiveCalls int       `json:"active_calls"`
	Load        float64   `json:"load"`
	Draining    bool      `json:"draining,omitempty"`
}

// PeerInfo is one member of the view as the admin API shows it.
type PeerInfo struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	State       string    `json:"state"` // live, suspect or dead
	Since       time.Time `json:"since"`
	LastSeen    time.Time `json:"last_seen"`
	Connected   bool      `json:"connected"`
	SIP         string    `json:"sip,omitempty"`
	Admin       string    `json:"admin,omitempty"`
	P2P         []string  `json:"p2p,omitempty"`
	Version     string    `json:"version,omitempty"`
	Capacity    int       `json:"capacity"`
	ActiveCalls int       `json:"active_calls"`
	Load        float64   `json:"load"`
	Draining    bool      `json:"draining,omitempty"`
}

// PeersResponse is the body of /api/v1/peers.
type PeersResponse struct {
	Peers []PeerInfo `json:"peers"`
}

// Info describes the node.
func (n *Node) Info() NodeInfo {
	return NodeInfo{
		ID: n.id.String(), Name: n.cfg.Name, SIP: n.SIPAddr(), Admin: n.AdminURL(), P2P: n.P2PAddrs(),
		Version: Version, Incarnation: n.Incarnation(), Started: n.started.UTC(), Capacity: n.cfg.Capacity,
		ActiveCalls: n.activeCalls(), Load: n.load(), Draining: n.draining(),
	}
}

// activeCalls is the number of calls in progress here.
func (n *Node) activeCalls() int {
	if n.calls == nil {
		return 0
	}
	return n.calls.Len()
}

// load is the share of the node's capacity in use, 0..1 (1 when the node
// takes no calls at all).
func (n *Node) load() float64 {
	if n.cfg.Capacity == 0 {
		return 1
	}
	return min(1, float64(n.activeCalls())/float64(n.cfg.Capacity))
}

func (n *Node) draining() bool { return n.calls != nil && n.calls.Draining() }

// CallsResponse is the body of /api/v1/calls.
type CallsResponse struct {
	Calls []b2bua.Info `json:"calls"`
}

// ListCalls describes the calls in progress, oldest first.
func (n *Node) ListCalls() []b2bua.Info {
	if n.calls == nil {
		return []b2bua.Info{}
	}
	cs := n.calls.Calls()
	sort.Slice(cs, func(i, j int) bool { return cs[i].Started.Before(cs[j].Started) })
	return cs
}

// Peers lists the members of the view, sorted by ID.
func (n *Node) Peers() []PeerInfo {
	ms := n.members.snapshot().Members()
	out := make([]PeerInfo, 0, len(ms))
	for _, m := range ms {
		out = append(out, peerInfo(m))
	}
	return out
}

func peerInfo(m gossip.Member) PeerInfo {
	return PeerInfo{
		ID: m.ID.String(), Name: m.Name, State: m.State.String(), Since: m.Since.UTC(), LastSeen: m.LastSeen.UTC(),
		Connected: m.Connected, SIP: m.SIP, Admin: m.Admin, P2P: m.P2P, Version: m.Version,
		Capacity: m.Capacity, ActiveCalls: m.ActiveCalls, Load: m.Load, Draining: m.Draining,
	}
}

func (n *Node) startAdmin() error {
	ln, err := net.Listen("tcp", n.cfg.Admin)
	if err != nil {
		return fmt.Errorf("admin listener %s: %w", n.cfg.Admin, err)
	}
	n.adminLn = ln
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if n.ctx.Err() != nil {
			http.Error(w, "stopping", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /api/v1/node", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, n.Info()) })
	mux.HandleFunc("GET /api/v1/peers", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, PeersResponse{Peers: n.Peers()})
	})
	n.registerUserRoutes(mux)
	mux.HandleFunc("GET /api/v1/locate", n.handleLocate)
	n.registerSLAAPI(mux)
	mux.HandleFunc("GET /api/v1/calls", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, CallsResponse{Calls: n.ListCalls()})
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(n.reg, promhttp.HandlerOpts{Registry: n.reg}))
	if n.cfg.Log.Pprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	n.adminSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := n.adminSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("admin server stopped", "err", err)
		}
	}()
	return nil
}

// LocateResponse is the body of /api/v1/locate: where a user is registered.
type LocateResponse struct {
	AOR     string    `json:"aor"`
	Node    string    `json:"node"`      // peer ID of the node holding the registration
	Name    string    `json:"node_name"` // that node's name
	SIP     string    `json:"sip"`       // that node's SIP address
	Expires time.Time `json:"expires"`
}

// handleLocate answers /api/v1/locate?aor=user@domain: 200 with the node,
// 404 when the user is registered nowhere, 400 without a usable AOR.
func (n *Node) handleLocate(w http.ResponseWriter, r *http.Request) {
	aor := strings.TrimPrefix(strings.TrimSpace(r.URL.Query().Get("aor")), "sip:")
	if !strings.Contains(aor, "@") {
		aor += "@" + n.cfg.Domain
	}
	if user, _, _ := strings.Cut(aor, "@"); user == "" {
		writeError(w, http.StatusBadRequest, "aor: want user@domain")
		return
	}
	loc, err := n.Locate(r.Context(), aor)
	switch {
	case errors.Is(err, ErrNotRegistered):
		writeError(w, http.StatusNotFound, aor+": not registered")
		return
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	writeJSON(w, LocateResponse{AOR: loc.AOR, Node: loc.Node.String(), Name: loc.Name, SIP: loc.SIP, Expires: loc.Expires.UTC()})
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSONStatus(w, code, ErrorResponse{Error: msg})
}

func writeJSON(w http.ResponseWriter, v any) { writeJSONStatus(w, http.StatusOK, v) }

// RunInfo is written to DATA_DIR/run.json while the node runs, so that
// operators and tools find a node started on port 0 (its actual admin URL and
// p2p addresses). It is removed on a clean stop.
type RunInfo struct {
	PID   int      `json:"pid"`
	ID    string   `json:"id"`
	Name  string   `json:"name"`
	Admin string   `json:"admin"`
	P2P   []string `json:"p2p"`
	SIP   string   `json:"sip"`
}

// RunFileName is the name of the runtime file in the data directory.
const RunFileName = "run.json"

func (n *Node) runFile() string { return filepath.Join(n.cfg.Path(n.cfg.DataDir), RunFileName) }

func (n *Node) writeRunFile() error {
	data, err := json.MarshalIndent(RunInfo{
		PID: os.Getpid(), ID: n.id.String(), Name: n.cfg.Name, Admin: n.AdminURL(), P2P: n.P2PAddrs(), SIP: n.SIPAddr(),
	}, "", "  ")
	if err != nil {
		return fmt.Errorf("run file: %w", err)
	}
	tmp := n.runFile() + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("run file: %w", err)
	}
	if err := os.Rename(tmp, n.runFile()); err != nil {
		return fmt.Errorf("run file: %w", err)
	}
	return nil
}

// ReadRunFile reads the runtime file of the node whose data directory is dir.
func ReadRunFile(dir string) (RunInfo, error) {
	var ri RunInfo
	data, err := os.ReadFile(filepath.Join(dir, RunFileName))
	if err != nil {
		return ri, fmt.Errorf("run file: %w (is the node running?)", err)
	}
	if err := json.Unmarshal(data, &ri); err != nil {
		return ri, fmt.Errorf("run file %s: %w", filepath.Join(dir, RunFileName), err)
	}
	return ri, nil
}
