package store

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"testing"
)

// childDirEnv, when set, makes the test binary act as a second process
// holding a store in that directory (see runChild).
const childDirEnv = "CALLMESH_STORE_TEST_CHILD_DIR"

// runChild opens the store in dir, makes one durable write, reports "ready"
// on stdout and then holds the store until stdin closes. It never closes the
// store cleanly: the parent kills it to simulate a crash.
func runChild(dir string) int {
	s, err := Open(Options{Dir: dir, SmallMemory: true, GCInterval: -1})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := s.Keyspace("cdr").Put([]byte("call-1"), []byte("billed"), Durable()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	os.Stdout.WriteString("ready\n")
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}

func TestLockAcrossProcessesAndCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childDirEnv+"="+dir)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()

	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("child did not get ready: %q, %v", line, err)
	}

	if s, err := Open(Options{Dir: dir, SmallMemory: true}); !errors.Is(err, ErrLocked) {
		if err == nil {
			s.Close()
		}
		t.Fatalf("Open while another process holds the store: error = %v, want ErrLocked", err)
	}

	// SIGKILL: no Close, no flush. The kernel drops the flock with the
	// process, and the durable write must be recovered from the logs.
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	s := openTest(t, Options{Dir: dir, SmallMemory: true})
	wantValue(t, s.Keyspace("cdr"), "call-1", "billed")
}
