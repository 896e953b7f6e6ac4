module github.com/durable-state-store/durable-state-store/clients/go/egostore/contribtest

go 1.26.0

replace (
	github.com/durable-state-store/durable-state-store/clients/go => ../../
	github.com/durable-state-store/durable-state-store/clients/go/egostore => ../
)

require (
	github.com/aws/aws-sdk-go-v2 v1.41.5
	github.com/aws/aws-sdk-go-v2/credentials v1.19.14
	github.com/aws/aws-sdk-go-v2/service/dynamodb v1.57.1
	github.com/durable-state-store/durable-state-store/clients/go v0.1.0
	github.com/durable-state-store/durable-state-store/clients/go/egostore v0.1.0
	github.com/tochemey/ego-contrib/durablestore/dynamodb v0.1.0
	github.com/tochemey/ego/v4 v4.4.3
	google.golang.org/protobuf v1.36.12
)

require (
	github.com/apapsch/go-jsonmerge/v2 v2.0.0 // indirect
	github.com/aws/aws-sdk-go-v2/internal/configsources v1.4.21 // indirect
	github.com/aws/aws-sdk-go-v2/internal/endpoints/v2 v2.7.21 // indirect
	github.com/aws/aws-sdk-go-v2/service/internal/accept-encoding v1.13.7 // indirect
	github.com/aws/aws-sdk-go-v2/service/internal/endpoint-discovery v1.11.21 // indirect
	github.com/aws/smithy-go v1.24.3 // indirect
	github.com/google/uuid v1.6.0 // indirect
	github.com/oapi-codegen/runtime v1.9.0 // indirect
)
