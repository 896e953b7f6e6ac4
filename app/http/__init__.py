"""The framework glue: how routes run, middleware, problem documents, the OpenAPI document, the server."""
