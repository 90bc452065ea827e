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

// BuildVersion returns the version and the commit of this build, as
// /version reports them: the linker-set [Version] and [Commit] if set;
// else the VCS information the Go tool embeds (version = commit time
// with ':' replaced by '-', as upstream tags are written; commit = the
// revision, with "-dirty" appended for a modified work tree); else the
// module version of a `go install module@version` build. What is not
// known is "<unknown>".
func BuildVersion() (version, commit string) {
	version, commit, _ = buildVersion()
	if version == "" {
		version, commit = unknown, unknown
	}
	return version, commit
}

// buildVersion is BuildVersion for the server. ok is false only if
// Version is unset and the binary carries no build information at all
// (then /version answers 500 "failed to read server version", as
// upstream).
func buildVersion() (version, commit string, ok bool) {
	info, ok := readBuildInfo()
	return versionOf(info, ok, Version, Commit)
}

func versionOf(info *debug.BuildInfo, ok bool, ldVersion, ldCommit string) (version, commit string, found bool) {
	if ldVersion != "" {
		commit = ldCommit
		if commit == "" {
			commit = unknown
		}
		return ldVersion, commit, true
	}
	if !ok {
		return "", "", false
	}
	version, commit = unknown, unknown
	modified := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.time":
			version = strings.ReplaceAll(s.Value, ":", "-")
		case "vcs.revision":
			commit = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if modified && commit != unknown {
		commit += "-dirty"
	}
	if v := info.Main.Version; version == unknown && v != "" && v != "(devel)" {
		version = v
	}
	if ldCommit != "" {
		commit = ldCommit
	}
	return version, commit, true
}
