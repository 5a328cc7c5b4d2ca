package gossip

// Heartbeat is the body of a message on the heartbeat topic: what a node says
// of itself every interval. The issuer's peer ID and sequence travel in the
// envelope around it, not here.
type Heartbeat struct {
	Name        string   `json:"name"`
	SIP         string   `json:"sip,omitempty"`
	Admin       string   `json:"admin,omitempty"`
	P2P         []string `json:"p2p,omitempty"` // listen multiaddrs, without /p2p/ID
	ActiveCalls int      `json:"active_calls"`
	Capacity    int      `json:"capacity"` // concurrent calls the node accepts
	Load        float64  `json:"load"`     // 0..1, the node's own estimate of how busy it is
	Version     string   `json:"version"`
	Draining    bool     `json:"draining,omitempty"`
}
