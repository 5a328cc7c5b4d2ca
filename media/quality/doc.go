// Package quality scores voice quality with the ITU-T G.107 E-model, the
// transmission-planning model that turns the parameters of a telephone
// connection (loudness ratings, noise, sidetone, echo, delay, codec and
// packet loss) into a transmission rating factor R, and R into an estimated
// mean opinion score (MOS-CQE).
//
// The package is a pure, allocation-free implementation of the narrowband
// model of ITU-T G.107 (06/2015), written from the Recommendation's
// equations:
//
//	R = Ro − Is − Id − Ie,eff + A        (§7.1, (7-1))
//
// where
//
//   - Ro, the basic signal-to-noise ratio (§7.2): circuit noise Nc, room noise
//     at the send side (Ps → Nos) and receive side (Pr, LSTR → Pre → Nor), and
//     the noise floor Nfor (→ Nfo), summed into No and weighed with SLR.
//   - Is, the simultaneous impairment factor (§7.3): Iolr (too-low overall
//     loudness, OLR = SLR + RLR), Ist (non-optimum sidetone, via STMRo) and Iq
//     (quantizing distortion: qdu → Q → G → Y, Z).
//   - Id, the delay impairment factor (§7.4): talker echo Idte (TELR and the
//     mean one-way delay of the echo path T, via TERV, Re and Roe), listener
//     echo Idle (WEPL and the round-trip delay of the echo loop Tr, via Rle)
//     and too-long absolute delay Idd (Ta above the delay-sensitivity
//     threshold mT, with the delay-sensitivity sharpness sT).
//   - Ie,eff, the effective equipment impairment factor (§7.5): the codec's
//     Ie raised by packet loss Ppl according to the codec's robustness Bpl and
//     the burst ratio BurstR.
//   - A, the advantage factor (§7.6).
//
// DefaultParams holds the default values of Table 3 (§7.7); with all of them
// R = 93.206, the Recommendation's "R = 93.2". MOS maps R to MOS-CQE with
// Annex B, (B-4).
//
// # Codecs and the common question
//
// Codecs and LookupCodec give the equipment impairment (Ie) and packet-loss
// robustness (Bpl) of common VoIP codecs from ITU-T G.113 Appendix I,
// together with frame size, look-ahead and the RTP default packetization
// time, from which a caller estimates mouth-to-ear delay. Estimate answers
// the everyday question "how good is a call with this codec, this
// mouth-to-ear delay and this loss?": it runs the full model with the
// Table 3 defaults, T = Ta and Tr = 2·Ta (a four-wire VoIP path whose only
// echo sources are the terminals, so the talker and listener echo terms
// count), and returns R and MOS.
//
// Note that the widely used shortcut R = 93.2 − Idd − Ie,eff (echo terms
// dropped) is not this model: for G.711 at 150 ms it gives 93.04 where the
// full model gives 89.54, because the default TELR of 65 dB and WEPL of
// 110 dB still cost about 3.6 points of echo impairment at that delay.
//
// Equation numbers in comments follow ITU-T G.107 (06/2015), whose main
// body is clause 7; editions before 2011 number the same equations (3-x).
//
// # References
//
//   - ITU-T Recommendation G.107 (06/2015), "The E-model: a computational
//     model for use in transmission planning", clause 7, Table 3 and Annex B.
//   - ITU-T Recommendation G.113 (11/2007), "Transmission impairments due to
//     speech processing", Appendix I, "Provisional planning values for the
//     equipment impairment factor Ie and packet-loss robustness factor Bpl".
//   - IETF RFC 3551, "RTP Profile for Audio and Video Conferences with
//     Minimal Control", Table 1 (frame sizes, default packetization times).
package quality
