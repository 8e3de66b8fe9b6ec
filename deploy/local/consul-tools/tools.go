//go:build tools

// Package tools pins the Consul agent built by deploy/local/consul.sh (Consul v1.14.8 is
// MPL-2.0; later lines are not open source). Build it with:
//
//	go build -o <out> github.com/hashicorp/consul
package tools

import (
	_ "github.com/hashicorp/consul"
)
