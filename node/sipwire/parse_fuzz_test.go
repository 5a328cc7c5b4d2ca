package sipwire

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse checks, on any input, that Parse does not panic and that a
// message it accepts is what sipgo makes of the same bytes.
func FuzzParse(f *testing.F) {
	for _, c := range parseAccepted {
		f.Add([]byte(c.raw))
	}
	for _, c := range parseRefused {
		if len(c.raw) < 4096 { // the oversized one only slows mutation
			f.Add([]byte(c.raw))
		}
	}
	for _, data := range parseCorpus(f) {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		parseCheck(t, data)
	})
}

// parseCorpus returns the messages in testdata/parse-*: inputs that once
// broke the property, kept as seeds and as table cases.
func parseCorpus(tb testing.TB) map[string][]byte {
	files, err := filepath.Glob(filepath.Join("testdata", "parse-*"))
	if err != nil {
		tb.Fatal(err)
	}
	corpus := make(map[string][]byte, len(files))
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			tb.Fatal(err)
		}
		corpus[filepath.Base(name)] = data
	}
	return corpus
}
