// Package etcdtest runs real etcd clusters for tests.
//
// [Start] launches one or more etcd processes on 127.0.0.1, each with its
// own data directory below t.TempDir() and free ports, waits until the
// cluster has a leader and every member answers linearizable reads, and
// stops the processes when the test ends. Members can be stopped, killed
// and restarted individually ([Member]), so tests can take away quorum and
// give it back.
//
//	c := etcdtest.Start(t, 3)
//	conf := &etcd.Config{Endpoints: c.Endpoints()}
//	c.Member(0).Kill()
//
// # The etcd binary
//
// The binary is $KES_TEST_ETCD_BIN if set, else "etcd" from $PATH, else
// /usr/bin/etcd (Debian's etcd-server package). If none exists the test
// is skipped, unless the environment variable CI is "true": continuous
// integration installs etcd, so there a missing binary fails the test.
//
// # Options
//
// [WithTLS] serves the client URLs over TLS and requires client
// certificates; the files a client needs are in [Cluster.TLSFiles].
// [WithAuth] enables etcd's user authentication with a root user.
//
// Each member's log (etcd writes it to stderr) is kept in memory and
// printed when the test fails.
package etcdtest

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/openkes/openkes/internal/testpki"
)

// RootUser is the name of the user that [WithAuth] creates.
const RootUser = "root"

// startTimeout bounds how long Start waits for a new cluster to become
// healthy, per attempt.
const startTimeout = 20 * time.Second

// Option configures a cluster started by [Start].
type Option func(*options)

type options struct {
	tls          bool
	rootPassword string
}

// WithTLS serves the members' client URLs over HTTPS with a certificate
// of a throwaway CA and requires clients to present a certificate of that
// CA ("--client-cert-auth"). Peers talk plain HTTP to each other.
func WithTLS() Option {
	return func(o *options) { o.tls = true }
}

// WithAuth creates the user [RootUser] with the given password and the
// root role, and enables authentication. Clients must then log in; the
// helpers of this package do so as root.
func WithAuth(rootPassword string) Option {
	return func(o *options) { o.rootPassword = rootPassword }
}

// TLSFiles names the PEM files a client of a [WithTLS] cluster needs.
type TLSFiles struct {
	CA   string // the CA that issued the server and client certificates
	Cert string // a client certificate
	Key  string // its private key
}

// Cluster is a running etcd cluster. Its methods may be called from
// several goroutines, but a member must not be stopped and restarted
// concurrently.
type Cluster struct {
	tb      testing.TB
	bin     string
	opts    options
	token   string // --initial-cluster-token
	members []*Member

	scheme    string // of the client URLs
	tlsFiles  TLSFiles
	clientTLS *tls.Config
}

// Member is one etcd process of a [Cluster].
type Member struct {
	c       *Cluster
	name    string
	dir     string
	client  string // client URL
	peer    string // peer URL
	initial string // --initial-cluster

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	log  *logBuffer
}

// Start starts a cluster of n members and waits until it is healthy. The
// processes are stopped when tb ends. Start skips the test if no etcd
// binary is found (or fails it when $CI is "true"), and fails it if the
// cluster does not come up.
func Start(tb testing.TB, n int, opts ...Option) *Cluster {
	tb.Helper()
	if n < 1 {
		tb.Fatalf("etcdtest: Start(%d): need at least one member", n)
	}
	bin := findBinary(tb)
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	c := &Cluster{tb: tb, bin: bin, opts: o, scheme: "http"}
	if o.tls {
		c.setupTLS()
	}
	tb.Cleanup(c.cleanup)

	// Free ports are found by binding to port 0 and closing the listener,
	// so another process may take one before etcd binds it: start again
	// with new ports (and new data directories) when that happens.
	var err error
	for attempt := 1; attempt <= 5; attempt++ {
		if err = c.start(n); err == nil {
			break
		}
		busy := c.portInUse()
		c.stopAll(true)
		if !busy {
			break
		}
		tb.Logf("etcdtest: a port was taken by another process, starting again (attempt %d)", attempt)
	}
	if err != nil {
		c.dumpLogs()
		tb.Fatalf("etcdtest: starting %d members: %v", n, err)
	}
	if o.rootPassword != "" {
		if err := c.enableAuth(); err != nil {
			c.dumpLogs()
			tb.Fatalf("etcdtest: enabling authentication: %v", err)
		}
	}
	return c
}

// findBinary returns the etcd binary to run, or ends the test.
func findBinary(tb testing.TB) string {
	tb.Helper()
	if bin := os.Getenv("KES_TEST_ETCD_BIN"); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			tb.Fatalf("etcdtest: KES_TEST_ETCD_BIN: %v", err)
		}
		return bin
	}
	if bin, err := exec.LookPath("etcd"); err == nil {
		return bin
	}
	if _, err := os.Stat("/usr/bin/etcd"); err == nil {
		return "/usr/bin/etcd"
	}
	const msg = "etcdtest: no etcd binary found (set KES_TEST_ETCD_BIN, or install it, e.g. apt-get install etcd-server)"
	if os.Getenv("CI") == "true" {
		tb.Fatal(msg)
	}
	tb.Skip(msg)
	return ""
}

// start creates and starts n members with fresh ports and directories and
// waits until they form a healthy cluster.
func (c *Cluster) start(n int) error {
	ports, err := findPorts(2 * n)
	if err != nil {
		return err
	}
	c.token = fmt.Sprintf("etcdtest-%d-%d", os.Getpid(), time.Now().UnixNano())
	c.members = make([]*Member, n)
	var initial []string
	for i := range c.members {
		m := &Member{
			c:      c,
			name:   fmt.Sprintf("m%d", i),
			dir:    filepath.Join(c.tb.TempDir(), "data"),
			client: fmt.Sprintf("%s://127.0.0.1:%d", c.scheme, ports[2*i]),
			peer:   fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1]),
		}
		initial = append(initial, m.name+"="+m.peer)
		c.members[i] = m
	}
	for _, m := range c.members {
		m.initial = strings.Join(initial, ",")
		if err := m.start(); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	return c.WaitHealthy(ctx)
}

// findPorts is freePorts; a test replaces it to provoke a port clash.
var findPorts = freePorts

// freePorts returns n distinct TCP ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func (c *Cluster) portInUse() bool {
	for _, m := range c.members {
		if m != nil && strings.Contains(m.log.String(), "address already in use") {
			return true
		}
	}
	return false
}

// setupTLS mints a CA, a server certificate for 127.0.0.1 and a client
// certificate, and writes them to files.
func (c *Cluster) setupTLS() {
	c.scheme = "https"
	ca := testpki.NewCA(c.tb)
	server := ca.Issue(c.tb, testpki.Options{
		CommonName: "etcd",
		DNSNames:   []string{"localhost"},
		IPs:        []net.IP{net.IPv4(127, 0, 0, 1)},
	})
	// etcd takes the common name of a client certificate as the user
	// name when a request carries no token; pick one that is no user.
	client := ca.Issue(c.tb, testpki.Options{CommonName: "etcdtest-client"})
	dir := c.tb.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			c.tb.Fatalf("etcdtest: %v", err)
		}
		return p
	}
	write("server.pem", server.CertPEM())
	write("server-key.pem", server.KeyPEM(c.tb))
	c.tlsFiles = TLSFiles{
		CA:   write("ca.pem", ca.CertPEM()),
		Cert: write("client.pem", client.CertPEM()),
		Key:  write("client-key.pem", client.KeyPEM(c.tb)),
	}
	c.clientTLS = &tls.Config{
		RootCAs:      ca.Pool(),
		Certificates: []tls.Certificate{client.TLS},
		MinVersion:   tls.VersionTLS12,
	}
}

// TLSFiles returns the CA, client certificate and key files of a cluster
// started [WithTLS]. For other clusters all fields are empty.
func (c *Cluster) TLSFiles() TLSFiles { return c.tlsFiles }

// ClientTLS returns a TLS config that trusts the cluster's CA and presents
// a client certificate, or nil if the cluster was not started [WithTLS].
func (c *Cluster) ClientTLS() *tls.Config {
	if c.clientTLS == nil {
		return nil
	}
	return c.clientTLS.Clone()
}

// RootPassword returns the password of [RootUser], or "" if the cluster
// was not started [WithAuth].
func (c *Cluster) RootPassword() string { return c.opts.rootPassword }

// Endpoints returns the client URLs of all members, in member order.
func (c *Cluster) Endpoints() []string {
	eps := make([]string, len(c.members))
	for i, m := range c.members {
		eps[i] = m.client
	}
	return eps
}

// Len returns the number of members.
func (c *Cluster) Len() int { return len(c.members) }

// Member returns member i, counting from 0.
func (c *Cluster) Member(i int) *Member { return c.members[i] }

// Client returns a client of the whole cluster, logged in as root if the
// cluster uses authentication. It is closed when tb ends.
func (c *Cluster) Client(tb testing.TB) *clientv3.Client {
	tb.Helper()
	cli, err := c.newClient(c.Endpoints()...)
	if err != nil {
		tb.Fatalf("etcdtest: client: %v", err)
	}
	tb.Cleanup(func() { cli.Close() })
	return cli
}

func (c *Cluster) newClient(endpoints ...string) (*clientv3.Client, error) {
	conf := clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		TLS:         c.ClientTLS(),
		Logger:      zap.NewNop(),
	}
	if c.opts.rootPassword != "" {
		conf.Username, conf.Password = RootUser, c.opts.rootPassword
	}
	return clientv3.New(conf)
}

// WaitHealthy waits until every running member answers a linearizable
// read, which it can only do as part of a cluster with a leader. It
// returns an error naming the first unhealthy member when ctx ends, or at
// once if one of the members exits meanwhile.
func (c *Cluster) WaitHealthy(ctx context.Context) error {
	var running []*Member
	for _, m := range c.members {
		if m.Running() {
			running = append(running, m)
		}
	}
	for _, m := range running {
		var last error
		for {
			for _, r := range running {
				if !r.Running() {
					return fmt.Errorf("member %s exited: %s", r.name, r.lastLogLine())
				}
			}
			if last = m.probe(ctx); last == nil {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("member %s is not healthy: %w", m.name, last)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return nil
}

func (m *Member) probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	// A client logs in when it is created, which needs a healthy member,
	// so it is created anew for every probe.
	cli, err := m.c.newClient(m.client)
	if err != nil {
		return err
	}
	defer cli.Close()
	_, err = cli.Get(clientv3.WithRequireLeader(ctx), "etcdtest-health")
	return err
}

// enableAuth creates the root user and turns authentication on.
func (c *Cluster) enableAuth() error {
	pw := c.opts.rootPassword
	c.opts.rootPassword = "" // log in only once auth is on
	cli, err := c.newClient(c.Endpoints()...)
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.RoleAdd(ctx, "root"); err != nil && !errors.Is(err, rpctypes.ErrRoleAlreadyExist) {
		return err
	}
	if _, err := cli.UserAdd(ctx, RootUser, pw); err != nil {
		return err
	}
	if _, err := cli.UserGrantRole(ctx, RootUser, "root"); err != nil {
		return err
	}
	if _, err := cli.AuthEnable(ctx); err != nil {
		return err
	}
	c.opts.rootPassword = pw
	return nil
}

// AddUser creates a user with the given password that may read and write
// the keys starting with prefix (all keys if prefix is empty). The
// cluster must have been started [WithAuth].
func (c *Cluster) AddUser(tb testing.TB, name, password, prefix string) {
	tb.Helper()
	cli := c.Client(tb)
	ctx, cancel := context.WithTimeout(tb.Context(), 10*time.Second)
	defer cancel()
	role := "role-" + name
	key, end := prefix, clientv3.GetPrefixRangeEnd(prefix)
	if prefix == "" {
		key, end = "\x00", "\x00"
	}
	steps := []func() error{
		func() error { _, err := cli.RoleAdd(ctx, role); return err },
		func() error {
			_, err := cli.RoleGrantPermission(ctx, role, key, end, clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := cli.UserAdd(ctx, name, password); return err },
		func() error { _, err := cli.UserGrantRole(ctx, name, role); return err },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			tb.Fatalf("etcdtest: AddUser(%q): %v", name, err)
		}
	}
}

// Stop stops every running member, one after the other, as
// [Member.Stop] does.
func (c *Cluster) Stop() {
	for _, m := range c.members {
		m.Stop()
	}
}

func (c *Cluster) stopAll(kill bool) {
	var wg sync.WaitGroup
	for _, m := range c.members {
		if m == nil {
			continue
		}
		wg.Go(func() {
			if kill {
				m.Kill()
			} else {
				m.Stop()
			}
		})
	}
	wg.Wait()
}

// cleanup kills the cluster (its data is thrown away, so there is no
// point in waiting for an orderly shutdown) and, if the test failed,
// prints the logs.
func (c *Cluster) cleanup() {
	c.stopAll(true)
	if c.tb.Failed() {
		c.dumpLogs()
	}
}

func (c *Cluster) dumpLogs() {
	for _, m := range c.members {
		if m != nil && m.log != nil {
			c.tb.Logf("etcdtest: log of member %s (%s):\n%s", m.name, m.client, m.log.String())
		}
	}
}

// Name returns the member's name, "m0", "m1", ...
func (m *Member) Name() string { return m.name }

// Endpoint returns the member's client URL.
func (m *Member) Endpoint() string { return m.client }

// Running reports whether the member's process is running.
func (m *Member) Running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.done == nil {
		return false
	}
	select {
	case <-m.done:
		return false
	default:
		return true
	}
}

func (m *Member) args() []string {
	args := []string{
		"--name", m.name,
		"--data-dir", m.dir,
		"--listen-client-urls", m.client,
		"--advertise-client-urls", m.client,
		"--listen-peer-urls", m.peer,
		"--initial-advertise-peer-urls", m.peer,
		"--initial-cluster", m.initial,
		"--initial-cluster-token", m.c.token,
		"--initial-cluster-state", "new",
		// Fast elections, so that tests that take quorum away and give
		// it back do not wait long.
		"--heartbeat-interval", "50",
		"--election-timeout", "500",
		"--quota-backend-bytes", strconv.Itoa(256 << 20),
		"--logger", "zap",
		"--log-outputs", "stderr",
		"--log-level", "warn",
	}
	if m.c.opts.tls {
		dir := filepath.Dir(m.c.tlsFiles.CA)
		args = append(args,
			"--cert-file", filepath.Join(dir, "server.pem"),
			"--key-file", filepath.Join(dir, "server-key.pem"),
			"--trusted-ca-file", m.c.tlsFiles.CA,
			"--client-cert-auth",
		)
	}
	return args
}

// start starts the member's process.
func (m *Member) start() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.done != nil {
		select {
		case <-m.done:
		default:
			return fmt.Errorf("member %s is running", m.name)
		}
	}
	if m.log == nil {
		m.log = new(logBuffer)
	} else {
		fmt.Fprintf(m.log, "---- etcdtest: restarting %s ----\n", m.name)
	}
	cmd := exec.Command(m.c.bin, m.args()...)
	cmd.Stdout = m.log
	cmd.Stderr = m.log
	cmd.Env = cleanEnv()
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("member %s: %w", m.name, err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	m.cmd, m.done = cmd, done
	return nil
}

// cleanEnv returns the environment without ETCD_* variables, which etcd
// would read as flags.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ETCD_") && !strings.HasPrefix(kv, "ETCDCTL_") {
			env = append(env, kv)
		}
	}
	return env
}

// Stop stops the member gracefully (SIGTERM, then SIGKILL after 5 s) and
// waits until its process has exited. Stopping a stopped member does
// nothing.
func (m *Member) Stop() { m.signal(syscall.SIGTERM, 5*time.Second) }

// Kill kills the member's process (SIGKILL) and waits until it has
// exited, as a crash would end it. Killing a stopped member does nothing.
func (m *Member) Kill() { m.signal(syscall.SIGKILL, 0) }

func (m *Member) signal(sig syscall.Signal, grace time.Duration) {
	m.mu.Lock()
	cmd, done := m.cmd, m.done
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	cmd.Process.Signal(sig)
	if grace > 0 {
		select {
		case <-done:
			return
		case <-time.After(grace):
			cmd.Process.Kill()
		}
	}
	<-done
}

// Restart starts a stopped or killed member again with its data
// directory, name and ports, so it rejoins the cluster. It waits until
// the member accepts connections on its client port, not until it is
// healthy: that needs a quorum of members (see [Cluster.WaitHealthy]).
// Restart fails the test if the member cannot be started.
func (m *Member) Restart() {
	m.c.tb.Helper()
	if err := m.start(); err != nil {
		m.c.tb.Fatalf("etcdtest: restart: %v", err)
	}
	host := strings.TrimPrefix(strings.TrimPrefix(m.client, "https://"), "http://")
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", host, time.Second)
		if err == nil {
			conn.Close()
			return
		}
		if !m.Running() {
			m.c.tb.Fatalf("etcdtest: restart of member %s: process exited: %s", m.name, m.lastLogLine())
		}
		if time.Now().After(deadline) {
			m.c.tb.Fatalf("etcdtest: restart of member %s: client port not open after 10s: %v", m.name, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Log returns what the member's process has written so far.
func (m *Member) Log() string {
	if m.log == nil {
		return ""
	}
	return m.log.String()
}

func (m *Member) lastLogLine() string {
	lines := strings.Split(strings.TrimSpace(m.Log()), "\n")
	return lines[len(lines)-1]
}

// logBuffer collects a process's output. Its size is bounded: a member
// that logs a lot keeps the first and the latest output.
type logBuffer struct {
	mu   sync.Mutex
	head bytes.Buffer
	tail []byte
	cut  int // bytes dropped between head and tail
}

const (
	logHead = 64 << 10
	logTail = 192 << 10
)

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(p)
	if room := logHead - b.head.Len(); room > 0 {
		k := min(room, len(p))
		b.head.Write(p[:k])
		p = p[k:]
	}
	b.tail = append(b.tail, p...)
	if over := len(b.tail) - logTail; over > 0 {
		b.cut += over
		b.tail = append(b.tail[:0], b.tail[over:]...)
	}
	return n, nil
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cut == 0 {
		return b.head.String() + string(b.tail)
	}
	return fmt.Sprintf("%s\n... %d bytes left out ...\n%s", b.head.String(), b.cut, b.tail)
}
