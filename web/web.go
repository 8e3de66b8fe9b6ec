// Package web embeds the browser-side parts of Glimpse: the tracker script sites include and
// the dashboard the gateway serves at "/".
package web

import (
	"embed"
	"io/fs"
)

//go:embed tracker/src/glimpse.js
var trackerFiles embed.FS

//go:embed dashboard
var dashboardFiles embed.FS

// Tracker holds glimpse.js at its root.
func Tracker() fs.FS { return mustSub(trackerFiles, "tracker/src") }

// Dashboard holds the dashboard's files, index.html at its root.
func Dashboard() fs.FS { return mustSub(dashboardFiles, "dashboard") }

func mustSub(f fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(f, dir)
	if err != nil {
		panic(err) // the directories are embedded at build time; a missing one is a build bug
	}
	return sub
}
