package statestore_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// The committed client must be what the generator makes of the committed document: after changing
// openapi/openapi.json, run `go generate ./...` in clients/go.
func TestGeneratedClientMatchesTheDocument(t *testing.T) {
	fresh := filepath.Join(t.TempDir(), "statestore.gen.go")
	generate := exec.Command("go", "tool", "-modfile=../tools/go.mod", "oapi-codegen",
		"-config", "oapi-codegen.yaml", "-o", fresh, "../../../openapi/openapi.json")
	if output, err := generate.CombinedOutput(); err != nil {
		t.Fatalf("oapi-codegen: %v\n%s", err, output)
	}
	want, err := os.ReadFile(fresh)
	if err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile("statestore.gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(committed, want) {
		t.Fatal("statestore.gen.go is out of date with openapi/openapi.json: run `go generate ./...` in clients/go")
	}
}
