package p2pmq_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
)

// The tool versions in the header differ between machines; everything else must match.
var versionLine = regexp.MustCompile(`(?m)^// .*protoc.* v[0-9.]+\n`)

func TestGeneratedCodeIsUpToDate(t *testing.T) {
	if _, err := exec.LookPath("protoc"); err != nil {
		t.Skip("protoc not found (Debian's protobuf-compiler)")
	}
	out := t.TempDir()
	cmd := exec.Command("bash", "generate.sh", out)
	log, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 77 {
		t.Skipf("generate.sh cannot run here: %s", log)
	}
	if err != nil {
		t.Fatalf("generate.sh: %v\n%s", err, log)
	}
	for _, name := range []string{"p2pmq.pb.go", "p2pmq_grpc.pb.go"} {
		fresh, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		committed, err := os.ReadFile(filepath.Join("p2pmqpb", name))
		if err != nil {
			t.Fatal(err)
		}
		if versionLine.ReplaceAllString(string(fresh), "") != versionLine.ReplaceAllString(string(committed), "") {
			t.Errorf("p2pmqpb/%s is out of date with proto/p2pmq/v1/p2pmq.proto: run clients/go/generate.sh", name)
		}
	}
}
