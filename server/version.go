package server

import (
	"runtime/debug"
	"strings"
	"sync"
)

// Version and Commit identify the build in /version and /v1/status. Set
// them with the linker, e.g.
//
//	go build -ldflags "-X github.com/openkes/openkes/server.Version=2025-01-01T00-00-00Z -X github.com/openkes/openkes/server.Commit=abc123"
//
// When Version is empty, the VCS information embedded by the Go tool is
// used as upstream does: version = commit time with ':' replaced by '-',
// commit = revision, and "<unknown>" for what is missing.
var (
	Version string
	Commit  string
)

const unknown = "<unknown>"

var readBuildInfo = sync.OnceValues(func() (*debug.BuildInfo, bool) { return debug.ReadBuildInfo() })

// buildVersion returns the server version and commit. ok is false only if
// Version is unset and the binary carries no build information at all
// (then /version answers 500 "failed to read server version", as
// upstream).
func buildVersion() (version, commit string, ok bool) {
	if Version != "" {
		commit = Commit
		if commit == "" {
			commit = unknown
		}
		return Version, commit, true
	}
	info, ok := readBuildInfo()
	if !ok {
		return "", "", false
	}
	version, commit = unknown, unknown
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.time":
			version = strings.ReplaceAll(s.Value, ":", "-")
		case "vcs.revision":
			commit = s.Value
		}
	}
	if Commit != "" {
		commit = Commit
	}
	return version, commit, true
}
