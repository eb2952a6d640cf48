package agentdb_test

// The tests run against the real server binary: AGENTDB_BIN, default
// ~/.cache/agentdb/target/release/agentdb (built by `make build`).

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	agentdb "github.com/agentdb/agentdb/sdk/go"
)

type testServer struct {
	addr     string
	dir      string
	adminKey string
	cmd      *exec.Cmd
	log      *strings.Builder
	mu       sync.Mutex
}

func agentdbBin() string {
	if b := os.Getenv("AGENTDB_BIN"); b != "" {
		return b
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "agentdb", "target", "release", "agentdb")
}

func testdataDir() string {
	if d := os.Getenv("AGENTDB_TESTDATA"); d != "" {
		return d
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "agentdb", "testdata")
}

// startServer starts `agentdb serve` on a free port with a fresh data directory and
// waits (up to 60 s) for its "agentdb listening on" line.
func startServer(sets ...string) (*testServer, error) {
	bin := agentdbBin()
	// A rebuild may replace the binary while tests start: wait for it briefly.
	for i := 0; ; i++ {
		if _, err := os.Stat(bin); err == nil {
			break
		} else if i >= 60 {
			return nil, fmt.Errorf("server binary %s: %v (set AGENTDB_BIN or run make build)", bin, err)
		}
		time.Sleep(time.Second)
	}
	dir, err := os.MkdirTemp("", "agentdb-go-sdk-")
	if err != nil {
		return nil, err
	}
	args := []string{"serve", "--listen", "127.0.0.1:0", "--data-dir", dir, "--set", "http_listen="}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	s := &testServer{dir: dir, log: &strings.Builder{}}
	var lastErr error
	for try := 0; try < 3; try++ {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "AGENTDB_LOG=warn")
		dieWithParent(cmd)
		out, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		cmd.Stderr = cmd.Stdout
		if err := cmd.Start(); err != nil {
			lastErr = err // e.g. "text file busy" while the binary is being replaced
			time.Sleep(2 * time.Second)
			continue
		}
		s.cmd = cmd
		addr := make(chan string, 1)
		go func() {
			sc := bufio.NewScanner(out)
			sc.Buffer(make([]byte, 1<<16), 1<<20)
			for sc.Scan() {
				line := sc.Text()
				s.mu.Lock()
				s.log.WriteString(line + "\n")
				s.mu.Unlock()
				if a := strings.TrimPrefix(line, "agentdb listening on "); a != line {
					addr <- strings.TrimSpace(a)
				}
			}
			_, _ = io.Copy(io.Discard, out)
		}()
		select {
		case a := <-addr:
			s.addr = a
		case <-time.After(60 * time.Second):
			s.stop()
			return nil, fmt.Errorf("server did not start in 60 s; its output:\n%s", s.output())
		}
		if strings.Contains(strings.Join(sets, " "), "security.auth=api_key") {
			k, err := os.ReadFile(filepath.Join(dir, "security", "bootstrap-admin.key"))
			if err != nil {
				s.stop()
				return nil, err
			}
			s.adminKey = strings.TrimSpace(string(k))
		}
		return s, nil
	}
	return nil, lastErr
}

func (s *testServer) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

func (s *testServer) stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = s.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = s.cmd.Process.Kill()
			<-done
		}
	}
	_ = os.RemoveAll(s.dir)
}

// srv is the server most tests share: API-key authentication on.
var srv *testServer

func TestMain(m *testing.M) {
	var err error
	srv, err = startServer("security.auth=api_key")
	if err != nil {
		fmt.Fprintln(os.Stderr, "cannot start the AgentDB server:", err)
		os.Exit(1)
	}
	code := m.Run()
	srv.stop()
	stopExtra()
	os.Exit(code)
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// admin dials the shared server with its admin key.
func admin(t *testing.T, opts ...agentdb.Option) *agentdb.Client {
	t.Helper()
	c, err := agentdb.Dial(ctxT(t, 20*time.Second), srv.addr, append([]agentdb.Option{agentdb.WithAPIKey(srv.adminKey)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
