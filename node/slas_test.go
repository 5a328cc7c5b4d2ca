package node

import (
	"sync"
	"testing"
)

const slasTestDoc = `
providers:
  - id: alpha
    access_points: ["sip:127.0.0.1:5171"]
    services:
      - type: transit
        segments: [{location: "*"}]
slas:
  - id: n0-alpha
    kind: node-provider
    between: [n0, alpha]
    price: {per_minute: "0.0040", currency: EUR}
    guarantees: {max_delay_ms: 20, max_loss_pct: 0.5}
`

// A republish racing a withdrawal never publishes the withdrawn offer under
// a newer sequence: the last state this node holds of its SLA is the
// withdrawal.
func TestSLAWithdrawRacingRepublish(t *testing.T) {
	n := startNode(t, testNodeConfig(t, "n0", t.TempDir()))
	const id = "n0-alpha"
	for i := range 20 {
		if _, err := n.OfferSLAs([]byte(slasTestDoc)); err != nil {
			t.Fatalf("round %d: OfferSLAs: %v", i, err)
		}
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); n.slas.publishAll() }()
		go func() {
			defer wg.Done()
			if err := n.WithdrawSLA(id); err != nil {
				t.Errorf("round %d: WithdrawSLA: %v", i, err)
			}
		}()
		wg.Wait()
		n.slas.mu.Lock()
		env := n.slas.envs[offerKey{n.id, id}]
		n.slas.mu.Unlock()
		if env == nil {
			t.Fatalf("round %d: no own state of %s; want the withdrawal", i, id)
		}
		if env.Kind != WithdrawKind {
			t.Fatalf("round %d: own state of %s is a %s at seq %v; want the withdrawal", i, id, env.Kind, env.Seq)
		}
	}
}
