module github.com/durable-state-store/durable-state-store/clients/go/egostore

go 1.26.0

replace github.com/durable-state-store/durable-state-store/clients/go => ../

require (
	github.com/durable-state-store/durable-state-store/clients/go v0.1.0
	github.com/tochemey/ego/v4 v4.4.3
	google.golang.org/protobuf v1.36.12
)

require (
	github.com/apapsch/go-jsonmerge/v2 v2.0.0 // indirect
	github.com/google/uuid v1.6.0 // indirect
	github.com/oapi-codegen/runtime v1.9.0 // indirect
)
