package load

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// TestPGOProfile merges the CPU profiles a load run wrote
// (CALLMESH_LOAD_PROFILE) into the profile the Go toolchain uses to guide
// its optimisation of cmd/callmesh (default.pgo; `make pgo` runs both).
//
//	CALLMESH_LOAD_PGO_FROM  directory of TARGET-RATE.pprof CPU profiles
//	CALLMESH_LOAD_PGO       file to write the merged profile to
//
// The profiles name every source file by its path on the machine that ran
// the load; the toolchain matches functions by name and line offset
// within them, not by file, so the merged profile keeps file names from
// the module path or the standard library on, and the binary's file name
// only.
func TestPGOProfile(t *testing.T) {
	out, from := os.Getenv("CALLMESH_LOAD_PGO"), os.Getenv("CALLMESH_LOAD_PGO_FROM")
	if out == "" || from == "" {
		t.Skip("set CALLMESH_LOAD_PGO and CALLMESH_LOAD_PGO_FROM (make pgo)")
	}
	all, err := filepath.Glob(filepath.Join(from, "*.pprof"))
	if err != nil {
		t.Fatal(err)
	}
	var cpu []string
	for _, f := range all {
		if !strings.HasSuffix(f, ".allocs.pprof") {
			cpu = append(cpu, f)
		}
	}
	if len(cpu) == 0 {
		t.Fatalf("no CPU profile in %s", from)
	}
	merged, err := exec.Command("go", append([]string{"tool", "pprof", "-proto"}, cpu...)...).Output()
	if err != nil {
		t.Fatalf("go tool pprof -proto: %v", err)
	}
	roots, err := sourceRoots()
	if err != nil {
		t.Fatal(err)
	}
	clean, err := withoutPaths(merged, roots)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, clean, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %d bytes from %d CPU profiles: %s", out, len(clean), len(cpu), strings.Join(cpu, ", "))
}

// sourceRoots maps the directories source files are found under to what
// stands in their place: the module's own directory to its module path,
// the module cache and the standard library's to nothing.
func sourceRoots() ([][2]string, error) {
	env, err := exec.Command("go", "env", "GOMODCACHE", "GOROOT").Output()
	if err != nil {
		return nil, fmt.Errorf("go env: %v", err)
	}
	f := strings.Fields(string(env))
	if len(f) != 2 {
		return nil, fmt.Errorf("go env GOMODCACHE GOROOT: %q", env)
	}
	mod, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		return nil, fmt.Errorf("go list -m: %v", err)
	}
	return [][2]string{
		{strings.TrimSpace(string(mod)) + "/", "github.com/callmesh/callmesh/"},
		{f[0] + "/", ""},
		{filepath.Join(f[1], "src") + "/", ""},
	}, nil
}

// profileStrings is the string table's field number in profile.proto.
const profileStrings = 6

// withoutPaths rewrites a gzipped profile.proto's string table: a string
// under one of roots loses the root (or has it replaced); any other
// absolute path keeps its last element. Every other field is copied as is.
func withoutPaths(gz []byte, roots [][2]string) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, fmt.Errorf("profile: %v", err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("profile: %v", err)
	}
	pb, err := rewriteStrings(raw, func(s string) string { return relative(s, roots) })
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(pb); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// rewriteStrings copies a profile.proto message, each string of its
// string table replaced by what f makes of it.
func rewriteStrings(raw []byte, f func(string) string) ([]byte, error) {
	var pb []byte
	for len(raw) > 0 {
		num, typ, n := protowire.ConsumeTag(raw)
		if n < 0 {
			return nil, fmt.Errorf("profile: %v", protowire.ParseError(n))
		}
		m := protowire.ConsumeFieldValue(num, typ, raw[n:])
		if m < 0 {
			return nil, fmt.Errorf("profile: field %d: %v", num, protowire.ParseError(m))
		}
		if num == profileStrings && typ == protowire.BytesType {
			s, _ := protowire.ConsumeString(raw[n:])
			pb = protowire.AppendTag(pb, num, typ)
			pb = protowire.AppendString(pb, f(s))
		} else {
			pb = append(pb, raw[:n+m]...)
		}
		raw = raw[n+m:]
	}
	return pb, nil
}

// relative is s without the machine's directories.
func relative(s string, roots [][2]string) string {
	if !strings.HasPrefix(s, "/") {
		return s
	}
	for _, r := range roots {
		if rest, ok := strings.CutPrefix(s, r[0]); ok {
			return r[1] + rest
		}
	}
	return filepath.Base(s)
}

// TestWithoutPaths rewrites a profile of this process: its stacks name
// this file and the runtime's by their paths here.
func TestWithoutPaths(t *testing.T) {
	var gz bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&gz, 0); err != nil {
		t.Fatal(err)
	}
	roots, err := sourceRoots()
	if err != nil {
		t.Fatal(err)
	}
	clean, err := withoutPaths(gz.Bytes(), roots)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(clean))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	if _, err := rewriteStrings(raw, func(s string) string { names = append(names, s); return s }); err != nil {
		t.Fatalf("rewritten profile does not parse: %v", err)
	}
	for _, s := range names {
		if strings.HasPrefix(s, "/") {
			t.Errorf("path left in the profile: %q", s)
		}
	}
	for _, want := range []string{"github.com/callmesh/callmesh/itest/load/pgo_test.go", "runtime/pprof/pprof.go"} {
		if !slices.Contains(names, want) {
			t.Errorf("%q not among the profile's %d strings", want, len(names))
		}
	}
}

func TestRelative(t *testing.T) {
	roots := [][2]string{{"/src/callmesh/", "github.com/callmesh/callmesh/"}, {"/cache/", ""}, {"/goroot/src/", ""}}
	for in, want := range map[string]string{
		"/src/callmesh/node/siptx/layer.go":              "github.com/callmesh/callmesh/node/siptx/layer.go",
		"/cache/github.com/emiago/sipgo@v1.7.3/sip/x.go": "github.com/emiago/sipgo@v1.7.3/sip/x.go",
		"/goroot/src/runtime/proc.go":                    "runtime/proc.go",
		"/tmp/build123/callmesh":                         "callmesh",
		"github.com/callmesh/callmesh/node.(*Node).Run":  "github.com/callmesh/callmesh/node.(*Node).Run",
		"": "",
	} {
		if got := relative(in, roots); got != want {
			t.Errorf("relative(%q) = %q, want %q", in, got, want)
		}
	}
}
