package quality_test

import (
	"fmt"

	"github.com/callmesh/callmesh/media/quality"
)

func ExampleEstimate() {
	g711, _ := quality.LookupCodec("PCMU", true)
	g729, _ := quality.LookupCodec("G729", false)
	for _, c := range []quality.Codec{g711, g729} {
		// Packetization + look-ahead + 100 ms network + 40 ms jitter buffer.
		delay := c.PtimeMs + c.LookaheadMs + 100 + 40
		r, mos := quality.Estimate(c, delay, 1, 1)
		fmt.Printf("%-7s %5.1f ms  R %.1f  MOS %.2f\n", c.Name, delay, r, mos)
	}
	// Output:
	// G.711   160.0 ms  R 85.5  MOS 4.21
	// G.729A  165.0 ms  R 73.7  MOS 3.76
}

func ExampleParams_Terms() {
	p := quality.DefaultParams()
	p.Ta, p.T, p.Tr = 150, 150, 300
	p.Bpl = 25.1
	t := p.Terms()
	fmt.Printf("Ro %.2f  Is %.2f  Id %.2f (Idte %.2f Idle %.2f Idd %.2f)  Ie,eff %.2f  R %.2f\n",
		t.Ro, t.Is, t.Id, t.Idte, t.Idle, t.Idd, t.IeEff, t.R)
	// Output:
	// Ro 94.77  Is 1.41  Id 3.82 (Idte 2.81 Idle 0.84 Idd 0.16)  Ie,eff 0.00  R 89.54
}
