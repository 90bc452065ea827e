package etcd

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
)

// A watch that fails is opened again after this long at first, doubling
// up to maxWatchWait. The maximum is short: while it waits after an
// outage a server may serve a key deleted elsewhere.
const (
	minWatchWait = 50 * time.Millisecond
	maxWatchWait = 500 * time.Millisecond

	// permanentWatchWait is the wait after errors that are no outage.
	permanentWatchWait = 5 * time.Second
)

// Watch calls changed with the name of every key below the store's prefix
// that is created, replaced or deleted, by any client, until ctx is done;
// it then returns nil. It also returns nil, at once, when the store is
// closed. Calls of changed are not concurrent, and are made in the order
// of the changes.
//
// Watch follows etcd's revisions: after an error (a member failed, the
// cluster lost its quorum, the connection broke) it opens the watch
// again, on any member that has a leader, from the revision after the
// last change it reported, so no change is missed. A member that loses
// its leader ends the watch, so a watch never sits on a member cut off
// from the cluster. If the revisions it needs were compacted in the
// meantime, it calls changed("") (any key may have changed) and goes on
// after the compaction revision.
//
// Watch starts following changes at the cluster's revision once it has
// read it, which may take long if the cluster is unreachable when Watch
// is called. As it cannot tell what changed before, it first calls
// changed("").
//
// Problems are logged (at warning level when a watch breaks, at info
// level when it works again); Watch never returns an error.
func (s *Store) Watch(ctx context.Context, changed func(name string)) error {
	w := watch{s: s, changed: changed, wait: minWatchWait}
	for ctx.Err() == nil && !s.isClosed() {
		err := w.run(ctx)
		if ctx.Err() != nil || s.isClosed() {
			break
		}
		if err == nil {
			continue // compacted: go on at once
		}
		if w.failing == nil {
			s.log.Warn("etcd: watching for changes failed, retrying", slog.Any("err", err))
		}
		w.failing = err
		wait := w.wait
		switch grpcCode(err) {
		case codes.PermissionDenied, codes.Unauthenticated, codes.InvalidArgument, codes.FailedPrecondition:
			// Wrong credentials or permissions: that will not go away
			// in a moment.
			wait = permanentWatchWait
		}
		sleep(ctx, wait, s.closed)
		w.wait = min(2*w.wait, maxWatchWait)
	}
	return nil
}

// watch is the state of one call of Watch.
type watch struct {
	s       *Store
	changed func(name string)

	// rev is the revision up to which every change was reported; the
	// next watch starts at rev+1. Zero until the cluster's revision was
	// read at the start.
	rev int64

	failing error         // the error of the last attempt, nil if it worked
	wait    time.Duration // before the next attempt
}

// run opens one watch and follows it until it ends. It returns nil if
// the watch ended because of a compaction (the next can be opened at
// once), and the error that ended it otherwise.
func (w *watch) run(ctx context.Context) error {
	s := w.s
	if w.rev == 0 {
		// Start at the cluster's current revision, read linearizably,
		// rather than at whatever revision the member that serves the
		// watch is at.
		rev, err := s.revision(ctx)
		if err != nil {
			return err
		}
		w.rev = rev
		// Keys may have been read, and cached, before this revision
		// and changed since.
		w.changed("")
	}
	lctx, cancel := context.WithTimeout(ctx, s.timeout)
	cli, err := s.client(lctx) // logs in if need be
	cancel()
	if err != nil {
		return err
	}

	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	opts := []clientv3.OpOption{
		clientv3.WithPrefix(),
		clientv3.WithCreatedNotify(),
		// Progress notifications advance rev while nothing changes
		// below the prefix, so that a watch opened again after a long
		// quiet time does not start at a compacted revision.
		clientv3.WithProgressNotify(),
		clientv3.WithRev(w.rev + 1),
	}
	for resp := range cli.Watch(wctx, s.prefix, opts...) {
		if resp.CompactRevision != 0 {
			// The changes between rev+1 and the compaction are gone,
			// including those at the compaction revision itself (the
			// tombstones of keys deleted there).
			s.log.Info("etcd: changes were compacted before they could be watched; treating every key as changed",
				slog.Int64("from", w.rev+1), slog.Int64("compacted", resp.CompactRevision))
			w.changed("")
			w.rev = resp.CompactRevision
			w.recovered()
			return nil
		}
		if err := resp.Err(); err != nil {
			return err
		}
		switch {
		case resp.Created:
			w.recovered()
		case resp.IsProgressNotify():
			w.rev = max(w.rev, resp.Header.Revision)
		}
		for _, ev := range resp.Events {
			w.changed(strings.TrimPrefix(string(ev.Kv.Key), s.prefix))
			w.rev = max(w.rev, ev.Kv.ModRevision)
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return errors.New("etcd: watch ended")
}

// recovered notes that a watch is open again.
func (w *watch) recovered() {
	if w.failing != nil {
		w.s.log.Info("etcd: watching for changes again", slog.Int64("revision", w.rev+1))
	}
	w.failing = nil
	w.wait = minWatchWait
}
