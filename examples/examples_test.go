// Package examples checks the deployment files in this folder: the
// systemd unit, the Containerfile at the top of the repository and the
// Kubernetes manifests. Each test parses its file and checks what
// docs/production.md promises about it.
package examples

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/openkes/openkes/config"
	_ "github.com/openkes/openkes/keystore/all"
)

// unit is a parsed systemd unit file: section -> key -> values.
type unit map[string]map[string][]string

func parseUnit(t *testing.T, data []byte) unit {
	t.Helper()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("kes.service:%d: not a key=value line in a section: %q", n, line)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	return u
}

func TestSystemdUnit(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("systemd/kes.service")
	if err != nil {
		t.Fatal(err)
	}
	u := parseUnit(t, data)
	svc := u["Service"]
	if svc == nil {
		t.Fatal("no [Service] section")
	}
	want := map[string]string{
		"AmbientCapabilities":   "CAP_IPC_LOCK",
		"LimitMEMLOCK":          "infinity",
		"NoNewPrivileges":       "yes",
		"ProtectSystem":         "strict",
		"ProtectHome":           "yes",
		"PrivateTmp":            "yes",
		"PrivateDevices":        "yes",
		"ExecReload":            "/bin/kill -HUP $MAINPID",
		"RestrictSUIDSGID":      "yes",
		"CapabilityBoundingSet": "CAP_IPC_LOCK",
	}
	for k, v := range want {
		if got := svc[k]; len(got) != 1 || got[0] != v {
			t.Errorf("[Service] %s = %q, want %q", k, got, v)
		}
	}
	if user := svc["User"]; len(user) != 1 || user[0] == "" || user[0] == "root" || user[0] == "0" {
		t.Errorf("[Service] User = %q, want a non-root user", user)
	}
	exec0 := strings.Fields(strings.Join(svc["ExecStart"], " "))
	if len(exec0) < 4 || filepath.Base(exec0[0]) != "kes" || exec0[1] != "server" || exec0[2] != "--config" {
		t.Errorf("[Service] ExecStart = %q, want kes server --config FILE", svc["ExecStart"])
	}
	if u["Install"]["WantedBy"] == nil {
		t.Error("[Install] WantedBy missing")
	}

	// systemd's own parser: every key must be known and every value
	// valid. verify wants the command to exist, so the test binary stands
	// in for kes.
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("systemd-analyze not found (.ci/run installs systemd)")
		}
		t.Log("systemd-analyze not found; skipping systemd's own check")
		return
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	unitFile := filepath.Join(dir, "kes.service")
	if err := os.WriteFile(unitFile, bytes.ReplaceAll(data, []byte(exec0[0]), []byte(self)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", unitFile).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) != 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

func TestContainerfile(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../Containerfile")
	if err != nil {
		t.Fatal(err)
	}
	type instr struct{ op, args string }
	var stages [][]instr
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		op, args, _ := strings.Cut(line, " ")
		op = strings.ToUpper(op)
		if op == "FROM" {
			stages = append(stages, nil)
		}
		if len(stages) == 0 {
			t.Fatalf("instruction before FROM: %q", line)
		}
		stages[len(stages)-1] = append(stages[len(stages)-1], instr{op, strings.TrimSpace(args)})
	}
	if len(stages) < 2 {
		t.Fatalf("%d stages, want a build stage and a final stage", len(stages))
	}
	var static bool
	for _, in := range stages[0] {
		if in.op == "RUN" && strings.Contains(in.args, "CGO_ENABLED=0") && strings.Contains(in.args, "go build") && strings.Contains(in.args, "./cmd/kes") {
			static = true
		}
	}
	if !static {
		t.Error("the build stage does not build ./cmd/kes with CGO_ENABLED=0 (a static binary)")
	}
	final := stages[len(stages)-1]
	if base := final[0].args; base != "scratch" && !strings.Contains(base, "distroless/static") {
		t.Errorf("final base image %q, want scratch or distroless/static", base)
	}
	var user, entry string
	for _, in := range final {
		switch in.op {
		case "USER":
			user = in.args
		case "ENTRYPOINT":
			entry = in.args
		}
	}
	if uid, _, _ := strings.Cut(user, ":"); uid == "" || uid == "0" || uid == "root" {
		t.Errorf("USER = %q, want a non-root user", user)
	}
	if !strings.Contains(entry, "kes") {
		t.Errorf("ENTRYPOINT = %q, want the kes binary", entry)
	}
}

// k8sObject is the part of a Kubernetes object the test looks at.
type k8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name      string `yaml:"name"`
		Namespace string `yaml:"namespace"`
	} `yaml:"metadata"`
	StringData map[string]string `yaml:"stringData"`
	Spec       struct {
		Template struct {
			Spec podSpec `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type podSpec struct {
	SecurityContext struct {
		RunAsNonRoot *bool `yaml:"runAsNonRoot"`
		RunAsUser    *int  `yaml:"runAsUser"`
	} `yaml:"securityContext"`
	Containers []struct {
		Name    string   `yaml:"name"`
		Args    []string `yaml:"args"`
		EnvFrom []struct {
			SecretRef struct {
				Name string `yaml:"name"`
			} `yaml:"secretRef"`
		} `yaml:"envFrom"`
		ReadinessProbe struct {
			HTTPGet struct {
				Scheme string `yaml:"scheme"`
				Path   string `yaml:"path"`
			} `yaml:"httpGet"`
		} `yaml:"readinessProbe"`
		SecurityContext struct {
			AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
			ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
			Capabilities             struct {
				Drop []string `yaml:"drop"`
				Add  []string `yaml:"add"`
			} `yaml:"capabilities"`
		} `yaml:"securityContext"`
		VolumeMounts []struct {
			Name      string `yaml:"name"`
			MountPath string `yaml:"mountPath"`
			SubPath   string `yaml:"subPath"`
		} `yaml:"volumeMounts"`
	} `yaml:"containers"`
	Volumes []struct {
		Name   string `yaml:"name"`
		Secret struct {
			SecretName string `yaml:"secretName"`
		} `yaml:"secret"`
	} `yaml:"volumes"`
}

func TestKubernetes(t *testing.T) {
	t.Parallel()
	f, err := os.Open("kubernetes/kes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(false)
	objects := map[string]k8sObject{} // kind/name
	for {
		var o k8sObject
		if err := dec.Decode(&o); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("kes.yaml: %v", err)
		}
		if o.APIVersion == "" || o.Kind == "" || o.Metadata.Name == "" {
			t.Fatalf("object without apiVersion, kind or metadata.name: %+v", o)
		}
		objects[o.Kind+"/"+o.Metadata.Name] = o
	}
	sts, ok := objects["StatefulSet/kes"]
	if !ok {
		t.Fatal("no StatefulSet kes")
	}
	pod := sts.Spec.Template.Spec
	if sc := pod.SecurityContext; sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser == 0 {
		t.Error("the pod does not run as a non-root user")
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	if sc := c.SecurityContext; sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		strings.Join(sc.Capabilities.Drop, ",") != "ALL" || strings.Join(sc.Capabilities.Add, ",") != "IPC_LOCK" {
		t.Errorf("container security context %+v, want no privilege escalation, a read-only root, all capabilities dropped but IPC_LOCK", sc)
	}
	if p := c.ReadinessProbe.HTTPGet; p.Scheme != "HTTPS" || p.Path != "/v1/ready" {
		t.Errorf("readiness probe %+v, want HTTPS /v1/ready", p)
	}

	// Every Secret the pod uses exists in the file (or is the TLS secret
	// created by hand), and the config it mounts is a valid kes config
	// whose certificate paths are mounted.
	mounts := map[string]string{} // mount path -> volume
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m.Name
	}
	volumes := map[string]string{} // volume -> secret
	for _, v := range pod.Volumes {
		volumes[v.Name] = v.Secret.SecretName
	}
	if len(c.Args) != 3 || c.Args[0] != "server" || c.Args[1] != "--config" {
		t.Fatalf("args %q, want server --config FILE", c.Args)
	}
	confPath := c.Args[2]
	confSecret, ok := objects["Secret/"+volumes[mounts[confPath]]]
	if !ok {
		t.Fatalf("the config file %s is not mounted from a Secret of the file", confPath)
	}
	confData, ok := confSecret.StringData[filepath.Base(confPath)]
	if !ok {
		t.Fatalf("Secret %s has no key %s", confSecret.Metadata.Name, filepath.Base(confPath))
	}
	env := map[string]string{}
	for _, e := range c.EnvFrom {
		s, ok := objects["Secret/"+e.SecretRef.Name]
		if !ok {
			t.Fatalf("envFrom names Secret %s, which is not in the file", e.SecretRef.Name)
		}
		for k := range s.StringData {
			// A distinct, valid identity for each variable.
			env[k] = fmt.Sprintf("%064x", len(env)+1)
		}
	}
	file, err := config.Parse([]byte(confData), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatalf("the mounted config does not parse: %v", err)
	}
	for _, w := range file.Warnings {
		t.Errorf("config warning: %s", w)
	}
	for _, p := range []string{file.TLS.KeyFile, file.TLS.CertFile} {
		if mounts[filepath.Dir(p)] == "" {
			t.Errorf("TLS file %s is not in a mounted folder", p)
		}
	}
	if rc, ok := file.Routes["/v1/ready"]; !ok || !rc.SkipAuth {
		t.Error("the config does not let the unauthenticated readiness probe in (api./v1/ready.skip_auth)")
	}
}
