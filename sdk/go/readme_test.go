package agentdb_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"
)

func goTool() string {
	if p := filepath.Join(runtime.GOROOT(), "bin", "go"); fileExists(p) {
		return p
	}
	return "go"
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// The quick start in README.md is a program: build and run it against the test server.
func TestReadmeQuickStart(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	must(t, err)
	m := regexp.MustCompile("(?s)```go\n(.*?)```").FindSubmatch(readme)
	if m == nil {
		t.Fatal("README.md has no ```go block")
	}
	code := string(m[1])
	// Inside the module, so that it builds against this checkout (and its vendor/).
	dir, err := os.MkdirTemp(".", "readme_example_")
	must(t, err)
	defer os.RemoveAll(dir)
	must(t, os.WriteFile(filepath.Join(dir, "main.go"), []byte(code), 0o644))
	cmd := exec.Command(goTool(), "run", "./"+filepath.Base(dir))
	cmd.Env = append(os.Environ(), "AGENTDB_ADDR="+srv.addr, "AGENTDB_API_KEY="+srv.adminKey)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	done := make(chan error, 1)
	must(t, cmd.Start())
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(120 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("the quick start did not finish in 120 s")
	}
	if err != nil {
		t.Fatalf("the quick start failed: %v\n%s", err, out.String())
	}
	if !strings.HasPrefix(out.String(), "bread.txt ") {
		t.Fatalf("the quick start printed %q, want the bread note first", out.String())
	}
}

// The checked-in generated code is what gen.sh makes from proto/proto.
func TestGeneratedCodeIsUpToDate(t *testing.T) {
	for _, tool := range []string{"protoc", "protoc-gen-go", "protoc-gen-go-grpc"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (apt-get install protobuf-compiler protoc-gen-go protoc-gen-go-grpc)", tool)
		}
	}
	out := t.TempDir()
	cmd := exec.Command("bash", "gen.sh", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gen.sh: %v\n%s", err, b)
	}
	want, err := filepath.Glob(filepath.Join("agentdbpb", "*.go"))
	must(t, err)
	got, err := filepath.Glob(filepath.Join(out, "*.go"))
	must(t, err)
	if len(got) != len(want) || len(want) != 4 {
		t.Fatalf("generated %v, checked in %v", got, want)
	}
	for _, w := range want {
		a, err := os.ReadFile(w)
		must(t, err)
		b, err := os.ReadFile(filepath.Join(out, filepath.Base(w)))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("%s differs from what gen.sh generates now: run sdk/go/gen.sh", w)
		}
	}
}
