package registry_test

import (
	"testing"

	"github.com/glimpse-analytics/glimpse/services/registry"
	"github.com/glimpse-analytics/glimpse/services/registry/registrytest"
)

func TestInProcConformance(t *testing.T) {
	registrytest.Run(t, func(t *testing.T) registry.Registry { return registry.NewInProc() }, registrytest.Options{})
}
