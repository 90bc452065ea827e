package etcd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"

	"github.com/openkes/openkes/keystore"
)

// Retries of a failed request wait this long at first, doubling up to
// maxRetryWait.
const (
	minRetryWait = 25 * time.Millisecond
	maxRetryWait = 500 * time.Millisecond
)

// listBatch is how many names List asks etcd for at once.
const listBatch = 1000

func checkName(op, name string) error {
	if name == "" {
		return fmt.Errorf("etcd: %s %q: invalid key name", op, name)
	}
	return nil
}

// Create puts value under name in one transaction that succeeds only if
// the key has never been created. It returns an error wrapping
// [keystore.ErrExists] if the key exists, a plain error for an empty name
// or a value larger than [MaxValueSize], and the errors described at
// [Store.Get] otherwise.
//
// If a request fails in a way that leaves open whether etcd applied it,
// Create tries again; if it then finds the key holding exactly value, the
// earlier request did create it and Create returns nil.
func (s *Store) Create(ctx context.Context, name string, value []byte) error {
	return s.write(ctx, "create", name, value, keystore.ErrExists, func(ctx context.Context, cli *clientv3.Client, retry bool) (bool, error) {
		return s.tryCreate(ctx, cli, name, value, retry)
	})
}

// write is Create and Replace: it checks name and the size of value and
// runs the attempts of try with s.do. An attempt reports whether the
// condition of its transaction failed, which write returns as an error
// wrapping failed.
func (s *Store) write(ctx context.Context, op, name string, value []byte, failed error, try func(ctx context.Context, cli *clientv3.Client, retry bool) (bool, error)) error {
	if err := checkName(op, name); err != nil {
		return err
	}
	if len(value) > MaxValueSize {
		return fmt.Errorf("etcd: %s %q: value exceeds %d bytes", op, name, MaxValueSize)
	}
	var condFailed bool
	err := s.do(ctx, op, name, func(ctx context.Context, cli *clientv3.Client, retry bool) (err error) {
		condFailed, err = try(ctx, cli, retry)
		return err
	})
	if err != nil {
		return err
	}
	if condFailed {
		return fmt.Errorf("etcd: %s %q: %w", op, name, failed)
	}
	return nil
}

// tryCreate is one attempt of Create. It reports whether the key exists
// (and, on a retry, holds a value other than value).
func (s *Store) tryCreate(ctx context.Context, cli *clientv3.Client, name string, value []byte, retry bool) (exists bool, err error) {
	key := s.key(name)
	txn := cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(value))) // the client takes strings
	if retry {
		txn = txn.Else(clientv3.OpGet(key))
	}
	resp, err := txn.Commit()
	if err != nil {
		return false, err
	}
	if resp.Succeeded {
		return false, nil
	}
	if retry && len(resp.Responses) == 1 {
		if r := resp.Responses[0].GetResponseRange(); r != nil && len(r.Kvs) == 1 && bytes.Equal(r.Kvs[0].Value, value) {
			return false, nil // created by an earlier attempt
		}
	}
	return true, nil
}

// Replace sets the value of the existing key name in one transaction
// that succeeds only if the key exists (keystore.Replacer). It returns an
// error wrapping [keystore.ErrNotFound] if there is none.
func (s *Store) Replace(ctx context.Context, name string, value []byte) error {
	return s.write(ctx, "replace", name, value, keystore.ErrNotFound, func(ctx context.Context, cli *clientv3.Client, _ bool) (bool, error) {
		key := s.key(name)
		resp, err := cli.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(key), ">", 0)).
			Then(clientv3.OpPut(key, string(value))).
			Commit()
		if err != nil {
			return false, err
		}
		// A retry of an applied Replace finds the key and puts the same
		// value again: harmless.
		return !resp.Succeeded, nil
	})
}

// Get returns the value stored under name, read linearizably: a key
// deleted or created through any client before Get started is seen so.
// It returns an error wrapping [keystore.ErrNotFound] if there is no such
// key, an error wrapping *[keystore.UnreachableError] if no member could
// be reached or the cluster has no quorum within the timeout, an error
// wrapping the caller's ctx.Err() if ctx was canceled, and a plain error
// otherwise (authentication and permission errors, an empty name, a value
// larger than [MaxValueSize]).
func (s *Store) Get(ctx context.Context, name string) ([]byte, error) {
	if err := checkName("get", name); err != nil {
		return nil, err
	}
	var value []byte
	var found bool
	err := s.do(ctx, "get", name, func(ctx context.Context, cli *clientv3.Client, _ bool) error {
		resp, err := cli.Get(ctx, s.key(name))
		if err != nil {
			return err
		}
		found = len(resp.Kvs) == 1
		if found {
			value = resp.Kvs[0].Value // owned by this response only
		}
		return nil
	})
	switch {
	case err != nil:
		return nil, err
	case !found:
		return nil, fmt.Errorf("etcd: get %q: %w", name, keystore.ErrNotFound)
	case len(value) > MaxValueSize:
		clear(value)
		return nil, fmt.Errorf("etcd: get %q: value exceeds %d bytes", name, MaxValueSize)
	}
	return value, nil
}

// Delete removes the key name. It returns an error wrapping
// [keystore.ErrNotFound] if there is no such key, and the errors
// described at [Store.Get] otherwise. If a request fails in a way that
// leaves open whether etcd applied it, Delete tries again and then
// reports a missing key as success.
func (s *Store) Delete(ctx context.Context, name string) error {
	if err := checkName("delete", name); err != nil {
		return err
	}
	var missing bool
	err := s.do(ctx, "delete", name, func(ctx context.Context, cli *clientv3.Client, retry bool) error {
		resp, err := cli.Delete(ctx, s.key(name))
		if err != nil {
			return err
		}
		missing = resp.Deleted == 0 && !retry
		return nil
	})
	if err != nil {
		return err
	}
	if missing {
		return fmt.Errorf("etcd: delete %q: %w", name, keystore.ErrNotFound)
	}
	return nil
}

// List returns the sorted names that start with prefix, paged by n as
// described at [keystore.Store.List]. The names are read in batches, all
// at the revision of the first, so a listing is a consistent snapshot. It returns the errors described at [Store.Get].
func (s *Store) List(ctx context.Context, prefix string, n int) ([]string, string, error) {
	start := s.prefix + prefix
	end := clientv3.GetPrefixRangeEnd(start)
	if start == "" {
		start, end = "\x00", "\x00" // every key
	}
	var (
		names []string
		next  string
	)
	err := s.do(ctx, "list", "", func(ctx context.Context, cli *clientv3.Client, _ bool) error {
		names, next = []string{}, ""
		key, rev := start, int64(0)
		for {
			limit := listBatch
			if n > 0 {
				limit = min(limit, n+1-len(names)) // one more tells next
			}
			opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithKeysOnly(), clientv3.WithLimit(int64(limit))}
			if rev != 0 {
				opts = append(opts, clientv3.WithRev(rev))
			}
			resp, err := cli.Get(ctx, key, opts...)
			if err != nil {
				return err
			}
			rev = resp.Header.Revision
			for _, kv := range resp.Kvs {
				names = append(names, strings.TrimPrefix(string(kv.Key), s.prefix))
			}
			if n > 0 && len(names) > n {
				next, names = names[n], names[:n:n]
				return nil
			}
			if !resp.More || len(resp.Kvs) == 0 {
				return nil
			}
			key = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
		}
	})
	if err != nil {
		return nil, "", err
	}
	return names, next, nil
}

// Status reads the key of the prefix itself linearizably (counting it
// only), which needs a member with a leader that can confirm it with a
// quorum, and returns how long that took. It returns an error wrapping
// *[keystore.UnreachableError] if no member can be reached or the cluster
// has no quorum, and a plain error otherwise (for example when the
// password is wrong).
func (s *Store) Status(ctx context.Context) (keystore.State, error) {
	start := time.Now()
	err := s.do(ctx, "status", "", func(ctx context.Context, cli *clientv3.Client, _ bool) error {
		_, err := cli.Get(ctx, s.probeKey(), clientv3.WithCountOnly())
		return err
	})
	if err != nil {
		return keystore.State{}, err
	}
	return keystore.State{Latency: time.Since(start)}, nil
}

// revision returns the cluster's current revision, read linearizably.
func (s *Store) revision(ctx context.Context) (int64, error) {
	var rev int64
	err := s.do(ctx, "read revision", "", func(ctx context.Context, cli *clientv3.Client, _ bool) error {
		resp, err := cli.Get(ctx, s.probeKey(), clientv3.WithCountOnly())
		if err != nil {
			return err
		}
		rev = resp.Header.Revision
		return nil
	})
	return rev, err
}

// probeKey is the key that Status and revision read: the prefix itself,
// which a user allowed to use the prefix may read.
func (s *Store) probeKey() string {
	if s.prefix == "" {
		return "/"
	}
	return s.prefix
}

// do runs f, with a context bounded by the store's timeout that requires
// a leader, until it succeeds, fails for good, or time runs out. f is told
// whether it is a retry, that is whether an earlier attempt may have been
// applied although it failed. do returns an error for the caller (see
// fail).
func (s *Store) do(parent context.Context, op, name string, f func(ctx context.Context, cli *clientv3.Client, retry bool) error) error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(parent, s.timeout)
	defer cancel()
	wait := minRetryWait
	var last error // the last error worth retrying
	for attempt := 0; ; attempt++ {
		cli, err := s.client(ctx)
		if err != nil {
			return err
		}
		if cli.ActiveConnection().GetState() == connectivity.TransientFailure {
			// The last attempt to connect to every member failed, and
			// gRPC waits (at most a second) before it tries again: no
			// member is up. Fail now rather than at the timeout, like
			// every request until a member answers.
			if last == nil {
				last = errNoMember
			}
			return s.fail(parent, ctx, op, name, start, last)
		}
		actx, acancel := context.WithTimeout(ctx, s.attemptTimeout())
		err = f(clientv3.WithRequireLeader(actx), cli, attempt > 0)
		attemptTimedOut := errors.Is(actx.Err(), context.DeadlineExceeded)
		acancel()
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			if last == nil {
				last = err
			}
			return s.fail(parent, ctx, op, name, start, last)
		case attemptTimedOut:
			// A member that lost its leader holds proposals until etcd's
			// own request timeout (5 s + 2 election timeouts); by then a
			// new leader has long been elected. Ask again instead.
			last = err
			continue
		case !retriable(err):
			return s.fail(parent, ctx, op, name, start, err)
		}
		last = err
		if !sleep(ctx, wait, nil) {
			return s.fail(parent, ctx, op, name, start, last)
		}
		wait = min(2*wait, maxRetryWait)
	}
}

// sleep waits for d and reports whether it did: it returns false at once
// when ctx is done or stop (nil: never) is closed.
func sleep(ctx context.Context, d time.Duration, stop <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-stop:
		return false
	}
}

// errNoMember is the cause of a request that was not sent because no
// member could be connected to.
var errNoMember = status.Error(codes.Unavailable, "no member is reachable")

// attemptTimeout bounds one attempt of an operation: a third of the
// store's timeout, at least a second, so that an operation can try again
// after a leader failover within its timeout.
func (s *Store) attemptTimeout() time.Duration {
	return min(s.timeout, max(s.timeout/3, time.Second))
}

// retriable reports whether a request that failed with err may succeed
// if sent again: the member had no leader, lost it, or was unreachable.
func retriable(err error) bool {
	return grpcCode(err) == codes.Unavailable
}

func grpcCode(err error) codes.Code {
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		return ee.Code()
	}
	return status.Code(err)
}

// fail turns the error of an operation into the error returned by the
// store:
//
//   - on a closed store, errClosed;
//   - if the caller canceled parent, parent's error;
//   - an error etcd sends when it has no quorum (no leader, request timed
//     out, ...): an *UnreachableError saying so;
//   - a connection error, or running out of time without an answer: an
//     *UnreachableError saying whether any member could be connected to.
//     The latter also wraps context.DeadlineExceeded;
//   - anything else: a plain error.
//
// start is when the operation started.
func (s *Store) fail(parent, ctx context.Context, op, name string, start time.Time, err error) error {
	what := "etcd: " + op
	if name != "" {
		what += fmt.Sprintf(" %q", name)
	}
	elapsed := time.Since(start).Round(time.Millisecond)
	var etcdErr rpctypes.EtcdError
	isEtcd := errors.As(rpctypes.Error(err), &etcdErr)
	switch {
	case s.isClosed():
		return fmt.Errorf("%s: %w", what, errClosed)
	case errors.Is(parent.Err(), context.Canceled):
		return fmt.Errorf("%s: %w", what, parent.Err())
	case isEtcd && etcdErr.Code() == codes.Unavailable:
		return &keystore.UnreachableError{Err: fmt.Errorf("%s: the cluster has no leader or no quorum (gave up after %v): %w", what, elapsed, etcdErr)}
	case grpcCode(err) == codes.Unavailable:
		return &keystore.UnreachableError{Err: fmt.Errorf("%s: cannot connect to any of %s (gave up after %v): %w", what, s.endpointList(), elapsed, err)}
	case ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || grpcCode(err) == codes.DeadlineExceeded:
		if !s.connected() {
			// Down, unreachable, or refusing the TLS handshake: gRPC
			// does not tell.
			return &keystore.UnreachableError{Err: fmt.Errorf("%s: cannot connect to any of %s within %v: %w", what, s.endpointList(), elapsed, context.DeadlineExceeded)}
		}
		return &keystore.UnreachableError{Err: fmt.Errorf("%s: no answer within %v (has the cluster lost its quorum?): %w", what, elapsed, context.DeadlineExceeded)}
	case isEtcd:
		return fmt.Errorf("%s: %w", what, etcdErr)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// connected reports whether the client is connected to at least one
// member.
func (s *Store) connected() bool {
	cli := s.cli.Load()
	return cli != nil && cli.ActiveConnection().GetState() == connectivity.Ready
}

func (s *Store) endpointList() string {
	if len(s.endpoints) == 1 {
		return s.endpoints[0]
	}
	return "[" + strings.Join(s.endpoints, " ") + "]"
}
