package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/callmesh/callmesh/media/quality"
)

// qualityResult is what `callmesh quality --json` prints.
type qualityResult struct {
	Codec        string  `json:"codec"`
	PLC          bool    `json:"plc"`
	MouthToEarMs float64 `json:"delay_ms"`
	LossPct      float64 `json:"loss_pct"`
	BurstR       float64 `json:"burst"`
	R            float64 `json:"r"`
	MOS          float64 `json:"mos"`
}

func newQualityCmd() *cobra.Command {
	var (
		codec       string
		plc, asJSON bool
		delay, loss float64
		burst       float64
	)
	cmd := &cobra.Command{
		Use:   "quality --codec PCMU|PCMA|G729A|G723 [--plc] --delay-ms D --loss-pct P [--burst B] [--json]",
		Short: "Score a connection with the ITU-T G.107 E-model: R and MOS",
		Long: "Score a connection with the ITU-T G.107 (06/2015) E-model.\n\n" +
			"--delay-ms is the mouth-to-ear delay Ta; the talker and listener echo paths use\n" +
			"T = Ta and Tr = 2·Ta; every other parameter keeps its G.107 Table 3 default.\n" +
			"--loss-pct is the packet-loss probability Ppl in percent, --burst the burst ratio\n" +
			"BurstR (1 = random loss). Codec impairments Ie and Bpl are from ITU-T G.113 Appendix I.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, ok := quality.LookupCodec(codec, plc)
			if !ok {
				var names []string
				for _, k := range quality.Codecs() {
					names = append(names, k.Name)
				}
				return usageErr("--codec: unknown codec %q (known: %s)", codec, strings.Join(names, ", "))
			}
			switch {
			case delay < 0:
				return usageErr("--delay-ms: %g must not be negative", delay)
			case loss < 0 || loss > 100:
				return usageErr("--loss-pct: %g must be within 0–100", loss)
			case burst < 1:
				return usageErr("--burst: %g must be at least 1 (1 = random loss)", burst)
			}
			r, mos := quality.Estimate(c, delay, loss, burst)
			res := qualityResult{Codec: c.Name, PLC: plc, MouthToEarMs: delay, LossPct: loss, BurstR: burst, R: r, MOS: mos}
			out := cmd.OutOrStdout()
			if asJSON {
				return json.NewEncoder(out).Encode(res)
			}
			fmt.Fprintf(out, "R %.2f  MOS %.2f  (%s, Ta %g ms, Ppl %g%%, BurstR %g)\n", r, mos, c.Name, delay, loss, burst)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&codec, "codec", "PCMU", "codec: PCMU, PCMA, G729A or G723")
	f.BoolVar(&plc, "plc", false, "the receiver conceals lost G.711 packets (G.113 Appendix I: Bpl 25.1 instead of 4.3)")
	f.Float64Var(&delay, "delay-ms", 0, "mouth-to-ear delay Ta in milliseconds")
	f.Float64Var(&loss, "loss-pct", 0, "packet loss Ppl in percent")
	f.Float64Var(&burst, "burst", 1, "burst ratio BurstR (1 = random loss)")
	f.BoolVar(&asJSON, "json", false, "print JSON: {codec, plc, delay_ms, loss_pct, burst, r, mos}")
	return cmd
}
