// Package web embeds the browser-side parts of Glimpse: the tracker script sites include and
// the dashboard the gateway serves at "/".
//
// Both are built from their sources (tracker/src, dashboard/src) by build.mjs with a pinned
// esbuild (npm ci && npm run build in this directory); the built files under */dist are
// committed, so building the Go binary needs no Node. test/browser checks that the committed
// builds match their sources.
package web

import (
	"embed"
	"io/fs"
)

//go:embed tracker/dist/glimpse.js
var trackerFiles embed.FS

//go:embed dashboard/dist
var dashboardFiles embed.FS

// Tracker holds glimpse.js (minified) at its root.
func Tracker() fs.FS { return mustSub(trackerFiles, "tracker/dist") }

// Dashboard holds the dashboard's files, index.html at its root.
func Dashboard() fs.FS { return mustSub(dashboardFiles, "dashboard/dist") }

func mustSub(f fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(f, dir)
	if err != nil {
		panic(err) // the directories are embedded at build time; a missing one is a build bug
	}
	return sub
}
