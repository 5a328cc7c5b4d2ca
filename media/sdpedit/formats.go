package sdpedit

import (
	"math"
	"strconv"
	"strings"
)

// Format is one RTP payload format of an m= line.
type Format struct {
	PT       uint8
	Name     string // encoding name in upper case, e.g. "PCMU", "TELEPHONE-EVENT", "CN"; "" if unknown
	Clock    uint32 // RTP clock rate in Hz; 0 if unknown
	Channels int    // audio channels (1 unless a=rtpmap says otherwise); 0 for non-audio
}

// parsePtime reads a=ptime (RFC 8866 §6.4) in milliseconds. Some phones
// write a decimal ("20.0"); anything unreadable is ignored rather than
// failing the call over an optional hint.
func parsePtime(v string) int {
	v = strings.TrimSpace(v)
	if n, ok := atoi(v, 100000); ok {
		return n
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || !(f > 0 && f <= 100000) {
		return 0
	}
	return int(math.Round(f))
}

// parseRtpmap reads "<payload type> <encoding name>/<clock rate>[/<encoding
// parameters>]" (RFC 8866 §6.6); for audio the parameter is the channel
// count, default 1.
func parseRtpmap(v, kind string) (Format, string) {
	ptS, enc, ok := twoFields(v)
	if !ok {
		return Format{}, "bad a=rtpmap " + quote(v)
	}
	pt, ok := atoi(ptS, 127)
	if !ok {
		return Format{}, "bad a=rtpmap payload type " + quote(ptS)
	}
	name, rest, _ := strings.Cut(enc, "/")
	clockS, chS, hasCh := strings.Cut(rest, "/")
	if name == "" || rest == "" || strings.Contains(chS, "/") {
		return Format{}, "bad a=rtpmap encoding " + quote(enc)
	}
	clock, err := strconv.ParseUint(clockS, 10, 32)
	if err != nil || clock == 0 {
		return Format{}, "bad a=rtpmap clock rate " + quote(clockS)
	}
	out := Format{PT: uint8(pt), Name: strings.ToUpper(name), Clock: uint32(clock)}
	if kind == "audio" {
		out.Channels = 1
	}
	if hasCh && kind == "audio" {
		ch, ok := atoi(chS, 255)
		if !ok || ch == 0 {
			return Format{}, "bad a=rtpmap channel count " + quote(chS)
		}
		out.Channels = ch
	}
	return out, ""
}

// twoFields splits "a b" separated by spaces or tabs, refusing more fields.
func twoFields(v string) (string, string, bool) {
	v = strings.Trim(v, " \t")
	i := strings.IndexAny(v, " \t")
	if i < 0 {
		return "", "", false
	}
	a, b := v[:i], strings.TrimLeft(v[i:], " \t")
	return a, b, !strings.ContainsAny(b, " \t")
}

// formatFor names a payload type: its first a=rtpmap, else the static table.
func formatFor(pt uint8, maps []Format, kind string) Format {
	for _, f := range maps {
		if f.PT == pt {
			return f
		}
	}
	if int(pt) < len(staticPT) && staticPT[pt].name != "" {
		s := staticPT[pt]
		return Format{PT: pt, Name: s.name, Clock: s.clock, Channels: s.ch}
	}
	f := Format{PT: pt}
	if kind == "audio" {
		f.Channels = 1
	}
	return f
}

// staticPT is the payload type table of RFC 3551 §6 (names upper-cased).
var staticPT = [...]struct {
	name  string
	clock uint32
	ch    int
}{
	0: {"PCMU", 8000, 1}, 3: {"GSM", 8000, 1}, 4: {"G723", 8000, 1},
	5: {"DVI4", 8000, 1}, 6: {"DVI4", 16000, 1}, 7: {"LPC", 8000, 1},
	8: {"PCMA", 8000, 1}, 9: {"G722", 8000, 1}, 10: {"L16", 44100, 2},
	11: {"L16", 44100, 1}, 12: {"QCELP", 8000, 1}, 13: {"CN", 8000, 1},
	14: {"MPA", 90000, 1}, 15: {"G728", 8000, 1}, 16: {"DVI4", 11025, 1},
	17: {"DVI4", 22050, 1}, 18: {"G729", 8000, 1}, 25: {"CELB", 90000, 0},
	26: {"JPEG", 90000, 0}, 28: {"NV", 90000, 0}, 31: {"H261", 90000, 0},
	32: {"MPV", 90000, 0}, 33: {"MP2T", 90000, 0}, 34: {"H263", 90000, 0},
}
