// Package docs carries the hand-written OpenAPI document of Glimpse's public HTTP API
// (openapi.json next to this file) into the binary, so the gateway can serve it at
// /api/openapi.json and tests can check it against the real handlers.
package docs

import _ "embed"

// OpenAPI is docs/openapi.json: an OpenAPI 3 description of the event API, the Measurement
// Protocol endpoint and the query API.
//
//go:embed openapi.json
var OpenAPI []byte
