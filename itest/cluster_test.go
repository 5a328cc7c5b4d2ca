package itest

import (
	"testing"
	"time"
)

func TestFiveNodesConverge(t *testing.T) {
	c := StartCluster(t, 5, Options{Logger: DebugLogger()})
	Eventually(t, 30*time.Second, c.Converged, "5 nodes did not converge")
	for i := range 5 {
		if got := len(c.Node(i).View().Live()); got != 4 {
			t.Errorf("node%d sees %d live peers, want 4", i, got)
		}
	}
}
