// Package accountpb is the tests' account state, compiled by protoc (from PyPI's grpcio-tools) and the
// pinned protoc-gen-go: `go generate ./...` in clients/go/egostore, with PYTHON naming a Python that has
// grpcio-tools when python3 has not.
package accountpb

//go:generate sh -c "${DOLLAR}{PYTHON:-python3} -m grpc_tools.protoc --proto_path=. --plugin=protoc-gen-go=${DOLLAR}(go tool -modfile=../../../tools/go.mod -n protoc-gen-go) --go_out=. --go_opt=paths=source_relative account.proto"
