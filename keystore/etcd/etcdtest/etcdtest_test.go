package etcdtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/openkes/openkes/internal/testlisten"
)

func put(t *testing.T, cli *clientv3.Client, key, value string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, key, value); err != nil {
		t.Fatalf("Put(%q) = %v, want nil", key, err)
	}
}

func get(t *testing.T, cli *clientv3.Client, key string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, key)
	if err != nil {
		t.Fatalf("Get(%q) = %v, want nil", key, err)
	}
	if len(resp.Kvs) != 1 {
		t.Fatalf("Get(%q) returned %d keys, want 1", key, len(resp.Kvs))
	}
	return string(resp.Kvs[0].Value)
}

func TestSingle(t *testing.T) {
	t.Parallel()
	c := Start(t, 1)
	if got := len(c.Endpoints()); got != 1 {
		t.Fatalf("len(Endpoints()) = %d, want 1", got)
	}
	if ep := c.Member(0).Endpoint(); !strings.HasPrefix(ep, "http://127.0.0.1:") {
		t.Fatalf("Endpoint() = %q, want http://127.0.0.1:<port>", ep)
	}
	cli := c.Client(t)
	put(t, cli, "k", "v")

	if c.Len() != 1 || c.Member(0).Name() != "m0" {
		t.Fatalf("Len() = %d, Member(0).Name() = %q; want 1, m0", c.Len(), c.Member(0).Name())
	}
	// Data survives a restart.
	c.Stop()
	if c.Member(0).Running() {
		t.Fatal("Running() after Stop = true, want false")
	}

	c.Member(0).Restart()
	if err := c.WaitHealthy(t.Context()); err != nil {
		t.Fatalf("WaitHealthy() = %v, want nil", err)
	}
	if log := c.Member(0).Log(); !strings.Contains(log, "restarting m0") {
		t.Errorf("Log() = %q, want it to mark the restart", log)
	}
	if got := get(t, cli, "k"); got != "v" {
		t.Fatalf("Get(k) after restart = %q, want %q", got, "v")
	}
}

func TestThreeMembers(t *testing.T) {
	t.Parallel()
	c := Start(t, 3)
	cli := c.Client(t)
	put(t, cli, "k", "v1")

	// One member down: the other two keep a quorum.
	c.Member(0).Kill()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := c.WaitHealthy(ctx); err != nil {
		t.Fatalf("WaitHealthy() with one member down = %v, want nil", err)
	}
	put(t, cli, "k", "v2")

	// Two down: no quorum, writes fail. (The write may still be applied
	// once the quorum is back: etcd keeps the proposal.)
	c.Member(1).Kill()
	wctx, wcancel := context.WithTimeout(t.Context(), time.Second)
	_, err := cli.Put(wctx, "k", "v3")
	wcancel()
	if err == nil {
		t.Fatal("Put without quorum = nil, want an error")
	}

	c.Member(0).Restart()
	c.Member(1).Restart()
	if err := c.WaitHealthy(ctx); err != nil {
		t.Fatalf("WaitHealthy() = %v, want nil", err)
	}
	put(t, cli, "k", "v4")
	// The member that was down first has caught up.
	one, err := c.newClient(c.Member(0).Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	defer one.Close()
	if got := get(t, one, "k"); got != "v4" {
		t.Fatalf("Get(k) from the restarted member = %q, want %q", got, "v4")
	}
}

func TestTLSAndAuth(t *testing.T) {
	t.Parallel()
	c := Start(t, 1, WithTLS(), WithAuth("secret"))
	if ep := c.Member(0).Endpoint(); !strings.HasPrefix(ep, "https://") {
		t.Fatalf("Endpoint() = %q, want https://...", ep)
	}
	files := c.TLSFiles()
	if files.CA == "" || files.Cert == "" || files.Key == "" {
		t.Fatalf("TLSFiles() = %+v, want all files", files)
	}
	cli := c.Client(t)
	put(t, cli, "k", "v")
	if c.RootPassword() != "secret" {
		t.Fatalf("RootPassword() = %q, want %q", c.RootPassword(), "secret")
	}

	c.AddUser(t, "kes", "pw", "kes/")
	user, err := clientv3.New(clientv3.Config{
		Endpoints: c.Endpoints(), TLS: c.ClientTLS(), Username: "kes", Password: "pw",
		DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
	})
	if err != nil {
		t.Fatalf("log in as kes: %v", err)
	}
	defer user.Close()
	put(t, user, "kes/k", "v")
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := user.Get(ctx, "k"); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Fatalf("Get(k) outside the user's prefix = %v, want %v", err, rpctypes.ErrPermissionDenied)
	}

	// Without a client certificate the server refuses the connection.
	noCert := c.ClientTLS()
	noCert.Certificates = nil
	anon, err := clientv3.New(clientv3.Config{
		Endpoints: c.Endpoints(), TLS: noCert, Logger: zap.NewNop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	ctx, cancel = context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	if _, err := anon.Get(ctx, "k"); err == nil {
		t.Fatal("Get without a client certificate = nil, want an error")
	}
}

func TestLogBuffer(t *testing.T) {
	t.Parallel()
	var b logBuffer
	b.Write([]byte(strings.Repeat("h", logHead)))
	b.Write([]byte(strings.Repeat("x", logTail)))
	b.Write([]byte("end"))
	s := b.String()
	if !strings.HasPrefix(s, "hhh") || !strings.HasSuffix(s, "xend") || !strings.Contains(s, "3 bytes left out") {
		t.Fatalf("logBuffer kept %d bytes: %.20q ... %q", len(s), s, s[len(s)-20:])
	}
}

// TestPortTaken starts a member on a port that another process holds:
// Start must try again with other ports. It replaces a global, so it
// does not run in parallel.
func TestPortTaken(t *testing.T) {
	l := testlisten.New(t)
	defer l.Close()
	taken := l.Addr().(*net.TCPAddr).Port
	calls := 0
	findPorts = func(n int) ([]int, error) {
		calls++
		ports, err := freePorts(n)
		if calls == 1 {
			ports[0] = taken
		}
		return ports, err
	}
	defer func() { findPorts = freePorts }()

	c := Start(t, 1)
	if calls != 2 {
		t.Fatalf("Start() looked for ports %d times, want 2", calls)
	}
	if ep := c.Member(0).Endpoint(); strings.HasSuffix(ep, fmt.Sprint(":", taken)) {
		t.Fatalf("Endpoint() = %q, the taken port", ep)
	}
}
