package server

import (
	"runtime/debug"
	"testing"
)

func TestVersionOf(t *testing.T) {
	t.Parallel()
	vcs := func(kv ...string) *debug.BuildInfo {
		info := &debug.BuildInfo{Main: debug.Module{Path: "github.com/openkes/openkes", Version: "(devel)"}}
		for i := 0; i+1 < len(kv); i += 2 {
			info.Settings = append(info.Settings, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return info
	}
	module := &debug.BuildInfo{Main: debug.Module{Path: "github.com/openkes/openkes", Version: "v1.2.3"}}
	tests := []struct {
		name                string
		info                *debug.BuildInfo
		ok                  bool
		ldVersion, ldCommit string
		wantVersion         string
		wantCommit          string
		wantFound           bool
	}{
		{"vcs", vcs("vcs.time", "2026-12-02T10:11:12Z", "vcs.revision", "abc123", "vcs.modified", "false"), true, "", "", "2026-12-02T10-11-12Z", "abc123", true},
		{"vcs dirty", vcs("vcs.time", "2026-12-02T10:11:12Z", "vcs.revision", "abc123", "vcs.modified", "true"), true, "", "", "2026-12-02T10-11-12Z", "abc123-dirty", true},
		{"module version", module, true, "", "", "v1.2.3", "<unknown>", true},
		{"nothing known", vcs(), true, "", "", "<unknown>", "<unknown>", true},
		{"linker", vcs("vcs.revision", "abc123"), true, "2026-01-01T00-00-00Z", "", "2026-01-01T00-00-00Z", "<unknown>", true},
		{"linker both", module, true, "v9", "c0ffee", "v9", "c0ffee", true},
		{"linker commit only", vcs("vcs.time", "2026-12-02T10:11:12Z", "vcs.revision", "abc123"), true, "", "c0ffee", "2026-12-02T10-11-12Z", "c0ffee", true},
		{"no build info", nil, false, "", "", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v, c, found := versionOf(tt.info, tt.ok, tt.ldVersion, tt.ldCommit)
			if v != tt.wantVersion || c != tt.wantCommit || found != tt.wantFound {
				t.Errorf("versionOf = %q, %q, %v, want %q, %q, %v", v, c, found, tt.wantVersion, tt.wantCommit, tt.wantFound)
			}
		})
	}
}
