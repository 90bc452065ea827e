package cli

import (
	"context"
	"crypto/subtle"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/openkes/openkes/config"
	"github.com/openkes/openkes/keystore"
	_ "github.com/openkes/openkes/keystore/all" // register the key-store backends
	"github.com/openkes/openkes/keystore/seal"
)

const migrateUsage = `Usage:
    kes migrate [options] --from <config> --to <config> [<pattern>]

Copies the keys whose names match <pattern> from the key store of one
KES config file to the key store of another, byte for byte. Only the
keystore section of each file is read. <pattern> is a glob ('*' and '?'
match any characters, [a-z] a class); the default '*' matches every key.

Keys are only created in the target, never removed from the source, so
an interrupted migration (Ctrl-C) loses nothing: run it again with
--merge to copy the remaining keys.

Options:
    --from <path>            Config file of the source key store.
    --to <path>              Config file of the target key store.
    --merge                  Skip keys that already exist in the target.
    -f, --force              Replace keys that already exist in the target
                             with the source's value. Stores that can
                             replace a value atomically (fs, etcd) do so;
                             for others a replacement is a delete followed
                             by a create: if the create fails the key is
                             missing from the target (never from the
                             source) until the next run. With a sealed
                             target, keys stored unsealed or sealed with an
                             old KEK are rewritten sealed with the current
                             one.
    -h, --help               Print command line options.

Without --merge or --force, a key that exists in the target stops the
migration. --merge and --force both skip keys whose value in the target
is already identical, so a finished migration can be repeated.
Upstream's migration into a MinIO KMS server (--server) is not supported.

Examples:
  1. Copy every key from one key store to another:
     $ kes migrate --from old.yml --to new.yml

  2. Copy the keys whose names start with 'minio-':
     $ kes migrate --from old.yml --to new.yml 'minio-*'

  3. Resume an interrupted migration:
     $ kes migrate --merge --from old.yml --to new.yml

  4. Seal the keys of a store in place after adding a seal section to
     its config (plain.yml: the same store without the seal section):
     $ kes migrate --force --from plain.yml --to sealed.yml
`

// migrateWorkers is the number of keys copied at the same time. Copying
// is latency-bound (an fsync per key on a filesystem, a round trip per
// request for a remote store), so a few requests in flight speed it up a
// lot; more could trip the request rate limits of cloud key stores.
const migrateWorkers = 4

// replaceTimeout bounds the delete-and-create of a replaced key (--force),
// which runs to completion even after an interrupt so that the key is not
// left deleted.
const replaceTimeout = 30 * time.Second

// Progress is refreshed this often: the bar on a terminal, a line
// otherwise.
const (
	barInterval  = 200 * time.Millisecond
	lineInterval = time.Second
)

// migrateHooks let the tests of this package see into a migration. They
// are read once per run; the zero value of each field means the real
// thing.
var migrateHooks struct {
	isTerminal func(e *env) bool                              // default: e.outTTY
	now        func() time.Time                               // default: time.Now
	ticker     func(time.Duration) (<-chan time.Time, func()) // default: time.NewTicker
	target     func(keystore.Store) keystore.Store            // wraps the target store
	workers    int                                            // default: migrateWorkers
}

// migrateMode says what to do with a key that exists in the target.
type migrateMode int

const (
	modeFail  migrateMode = iota // stop the migration
	modeMerge                    // --merge: keep the target's key
	modeForce                    // --force: replace it
)

func runMigrate(ctx context.Context, e *env, args []string) error {
	var (
		from, to     string
		force, merge bool

		// Upstream can also migrate into a MinIO KMS server; these
		// flags are only recognised to say that this one cannot.
		server, enclave, apiKey string
		insecure                bool
	)
	fs := newFlagSet("migrate")
	stringFlag(fs, &from, "from")
	stringFlag(fs, &to, "to")
	boolFlag(fs, &force, "f", "force")
	boolFlag(fs, &merge, "merge")
	stringFlag(fs, &server, "s", "server")
	stringFlag(fs, &enclave, "e", "enclave")
	stringFlag(fs, &apiKey, "a", "api-key")
	boolFlag(fs, &insecure, "k", "insecure")
	args, err := parseFlags(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(e.stdout, migrateUsage)
		return nil
	}
	if err != nil {
		return usagef("migrate", "%v", err)
	}
	switch {
	case server != "" || enclave != "" || apiKey != "" || insecure:
		return withHint(&usageError{msg: "migrating to a MinIO KMS server (--server, --enclave, --api-key) is not supported"},
			"copy the keys into a key store with '--to <config file>'")
	case force && merge:
		return &usageError{msg: "'--force' and '--merge' flags are mutually exclusive"}
	case from == "":
		return &usageError{msg: "no source specified. Use '--from' flag"}
	case to == "":
		return &usageError{msg: "no target specified. Use '--to' flag"}
	case len(args) > 1:
		return usagef("migrate", "too many arguments")
	}
	pattern := "*"
	if len(args) == 1 {
		pattern = args[0]
	}
	if _, err := path.Match(pattern, ""); err != nil {
		return usagef("migrate", "invalid pattern '%s': %v", pattern, err)
	}
	mode := modeFail
	switch {
	case merge:
		mode = modeMerge
	case force:
		mode = modeForce
	}

	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	src, err := openMigrateStore(ctx, e, "source", from, log)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := openMigrateStore(ctx, e, "target", to, log)
	if err != nil {
		return err
	}
	defer dst.Close()
	if migrateHooks.target != nil {
		dst = migrateHooks.target(dst)
	}

	tty := e.outTTY
	if migrateHooks.isTerminal != nil {
		tty = migrateHooks.isTerminal(e)
	}
	m := &migration{src: src, dst: dst, mode: mode, pattern: pattern}
	p := newMigrateProgress(e.stdout, tty)
	stats, err := m.run(ctx, p)
	p.finish(stats)
	if err != nil {
		return migrateError(ctx, err, stats, mode)
	}
	stats.summary(e.stdout)
	return nil
}

// openMigrateStore reads the key store section of the config file at path and
// connects to the store. role ("source" or "target") prefixes errors.
func openMigrateStore(ctx context.Context, e *env, role, path string, log *slog.Logger) (keystore.Store, error) {
	kind, conf, warnings, err := config.ReadKeyStore(path)
	for _, w := range warnings {
		fmt.Fprintf(e.stderr, "kes: warning: %s %s: %s\n", role, path, w)
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", role, path, err)
	}
	store, err := conf.Connect(ctx, log)
	if err != nil {
		return nil, fmt.Errorf("%s %s: keystore.%s: %w", role, path, kind, err)
	}
	return store, nil
}

// migrateError turns the error that stopped a migration into what the
// user needs to know: what happened and how to carry on.
func migrateError(ctx context.Context, err error, s migrateStats, mode migrateMode) error {
	resume := "run the same command again to copy the remaining keys"
	if mode == modeFail {
		resume = "run the same command with --merge to copy the remaining keys"
	}
	if ctx.Err() != nil {
		if s.total == 0 {
			return errors.New("migration interrupted: no keys migrated")
		}
		return withHint(
			fmt.Errorf("migration interrupted: %d of %d keys migrated", s.migrated(), s.total),
			"the source is unchanged and every migrated key is complete; "+resume)
	}
	if s.migrated() == 0 {
		return err
	}
	return withHint(err, fmt.Sprintf("%d of %d keys were migrated before the error; the source is unchanged; %s", s.migrated(), s.total, resume))
}

// migration copies keys from src to dst.
type migration struct {
	src, dst keystore.Store
	mode     migrateMode
	pattern  string
}

// migrateOutcome is what happened to one key.
type migrateOutcome int

const (
	keyCopied    migrateOutcome = iota // created in the target
	keyReplaced                        // --force: deleted from and created again in the target
	keyKept                            // --merge: already in the target, left alone
	keyIdentical                       // already in the target with the same value
	keyVanished                        // deleted from the source since it was listed
)

// maxDiffering is how many names of keys kept with a different value
// (--merge) the summary lists.
const maxDiffering = 10

// migrateStats counts the keys of a migration by outcome.
type migrateStats struct {
	total  int // keys matching the pattern
	n      [keyVanished + 1]int
	differ []string // the first maxDiffering keys with outcome keyKept
}

// add counts the outcome o of the key name.
func (s *migrateStats) add(name string, o migrateOutcome) {
	s.n[o]++
	if o == keyKept && len(s.differ) < maxDiffering {
		s.differ = append(s.differ, name)
	}
}

func (s *migrateStats) migrated() int  { return s.n[keyCopied] + s.n[keyReplaced] }
func (s *migrateStats) remaining() int { return s.total - s.processed() }
func (s *migrateStats) processed() int {
	sum := 0
	for _, n := range s.n {
		sum += n
	}
	return sum
}

// summary prints the result of a successful migration.
func (s *migrateStats) summary(w io.Writer) {
	var b strings.Builder
	if n := s.migrated(); n == 0 {
		b.WriteString("Migration succeeded! No keys migrated.\n")
	} else {
		fmt.Fprintf(&b, "Migrated %d keys successfully!\n", n)
	}
	for _, line := range []struct {
		n      int
		format string
	}{
		{s.n[keyReplaced], "Replaced %d keys whose value in the target differed.\n"},
		{s.n[keyIdentical], "Skipped %d keys already in the target with the same value.\n"},
		{s.n[keyKept], "Skipped %d keys that exist in the target with a different value.\n"},
		{s.n[keyVanished], "Skipped %d keys deleted from the source during the migration.\n"},
	} {
		if line.n > 0 {
			fmt.Fprintf(&b, line.format, line.n)
		}
	}
	if len(s.differ) > 0 {
		// Two different keys under one name are worth a look: data
		// encrypted with the source's key cannot be decrypted with the
		// target's.
		fmt.Fprintf(&b, "Kept the target's value of: %s", strings.Join(s.differ, ", "))
		if more := s.n[keyKept] - len(s.differ); more > 0 {
			fmt.Fprintf(&b, " and %d more", more)
		}
		b.WriteString("\n")
	}
	io.WriteString(w, b.String())
}

// run lists the source and copies every key matching the pattern, with
// migrateWorkers keys in flight. It stops at the first error or when ctx
// is done, after the keys in flight are finished, so the returned stats
// count exactly the keys that were copied.
func (m *migration) run(ctx context.Context, p *migrateProgress) (migrateStats, error) {
	var stats migrateStats
	names, err := m.list(ctx)
	if err != nil {
		return stats, err
	}
	stats.total = len(names)
	p.start(stats)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan string)
	go func() {
		defer close(jobs)
		for _, name := range names {
			select {
			case jobs <- name:
			case <-ctx.Done():
				return
			}
		}
	}()
	type result struct {
		name    string
		outcome migrateOutcome
		err     error
	}
	results := make(chan result)
	var wg sync.WaitGroup
	workers := migrateWorkers
	if migrateHooks.workers > 0 {
		workers = migrateHooks.workers
	}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range jobs {
				o, err := m.copyKey(ctx, name)
				results <- result{name, o, err}
			}
		}()
	}
	go func() {
		wg.Wait()
		close(results)
	}()

	tick, stopTicker := p.ticker()
	defer stopTicker()
	var firstErr error
	for {
		select {
		case r, ok := <-results:
			if !ok {
				if firstErr == nil && stats.remaining() > 0 {
					firstErr = ctx.Err() // interrupted between two keys
				}
				return stats, firstErr
			}
			switch {
			case r.err != nil && firstErr == nil:
				firstErr = r.err
				cancel()
			case r.err == nil:
				stats.add(r.name, r.outcome)
			}
			p.update(stats)
		case <-tick:
			p.update(stats)
		}
	}
}

// list returns the sorted names of the source that match the pattern.
//
// It asks the store for all names at once (n = 0). The Store contract has
// no way to continue a listing after a given name: the "next" name it
// returns can only be passed on as a prefix, which skips every name that
// does not start with it (the bug of upstream's list iterator). The
// names of even millions of keys fit in memory.
func (m *migration) list(ctx context.Context) ([]string, error) {
	prefix := m.pattern
	if i := strings.IndexAny(prefix, `*?[\`); i >= 0 {
		prefix = prefix[:i]
	}
	names, next, err := m.src.List(ctx, prefix, 0)
	if err != nil {
		return nil, fmt.Errorf("listing the source: %w", err)
	}
	if next != "" {
		return nil, fmt.Errorf("listing the source: the key store returned only part of its keys (up to '%s')", next)
	}
	matching := names[:0]
	for _, name := range names {
		if ok, _ := path.Match(m.pattern, name); ok {
			matching = append(matching, name)
		}
	}
	return matching, nil
}

// resealer is implemented by sealing key stores (keystore/seal): it
// reports whether a stored value is not sealed with the current KEK.
type resealer interface {
	NeedsReseal(ctx context.Context, name string) (bool, error)
}

// copyKey copies one key, as the mode says. Errors name the key; the
// value never appears in them.
func (m *migration) copyKey(ctx context.Context, name string) (migrateOutcome, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	ctx = seal.AllowUnsealed(ctx) // values stored unsealed are what --force reseals
	value, err := m.src.Get(ctx, name)
	if errors.Is(err, keystore.ErrNotFound) {
		return keyVanished, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading key '%s' from the source: %w", name, err)
	}
	defer clear(value)

	err = m.dst.Create(ctx, name, value)
	if err == nil {
		return keyCopied, nil
	}
	if !errors.Is(err, keystore.ErrExists) {
		return 0, fmt.Errorf("creating key '%s' in the target: %w", name, err)
	}

	if m.mode == modeFail {
		return 0, fmt.Errorf("key '%s' already exists in the target; use --merge to skip existing keys or --force to overwrite", name)
	}
	old, err := m.dst.Get(ctx, name)
	switch {
	case err == nil:
		same := subtle.ConstantTimeCompare(old, value) == 1
		clear(old)
		if same && m.mode == modeForce {
			// A sealing target reads sealed values back unsealed: an
			// identical value may still be stored unsealed or under an
			// old KEK, and --force rewrites it sealed.
			if r, ok := m.dst.(resealer); ok {
				need, err := r.NeedsReseal(ctx, name)
				if err != nil {
					return 0, fmt.Errorf("reading key '%s' from the target: %w", name, err)
				}
				same = !need
			}
		}
		if same {
			return keyIdentical, nil
		}
		if m.mode == modeMerge {
			return keyKept, nil
		}
	case errors.Is(err, keystore.ErrNotFound):
		// Deleted from the target since Create failed: try again.
		if err := m.dst.Create(ctx, name, value); err != nil {
			return 0, fmt.Errorf("creating key '%s' in the target: %w", name, err)
		}
		return keyCopied, nil
	default:
		return 0, fmt.Errorf("reading key '%s' from the target: %w", name, err)
	}

	// modeForce and a different value. Once the old value is deleted the
	// new one must be written, interrupt or not.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), replaceTimeout)
	defer cancel()
	if r, ok := m.dst.(keystore.Replacer); ok {
		// Atomic: the key is never missing from the target.
		err := r.Replace(wctx, name, value)
		if err == nil {
			return keyReplaced, nil
		}
		if !errors.Is(err, errors.ErrUnsupported) {
			return 0, fmt.Errorf("replacing key '%s' in the target: %w", name, err)
		}
	}
	if err := m.dst.Delete(wctx, name); err != nil && !errors.Is(err, keystore.ErrNotFound) {
		return 0, fmt.Errorf("deleting key '%s' from the target: %w", name, err)
	}
	if err := m.dst.Create(wctx, name, value); err != nil {
		return 0, fmt.Errorf("key '%s' was deleted from the target to be replaced, but creating it failed: %w", name, err)
	}
	return keyReplaced, nil
}

// migrateProgress reports the progress of a migration: a bar refreshed in
// place on a terminal, a line every second otherwise.
type migrateProgress struct {
	w     io.Writer
	tty   bool
	now   func() time.Time
	begin time.Time // when copying started
	last  time.Time // of the last report
	width int       // of the bar last drawn, to blank it out
}

func newMigrateProgress(w io.Writer, tty bool) *migrateProgress {
	p := &migrateProgress{w: w, tty: tty, now: time.Now}
	if migrateHooks.now != nil {
		p.now = migrateHooks.now
	}
	return p
}

func (p *migrateProgress) interval() time.Duration {
	if p.tty {
		return barInterval
	}
	return lineInterval
}

// ticker returns a channel that fires to refresh the report while no key
// is finished (a slow store), and its stop function.
func (p *migrateProgress) ticker() (<-chan time.Time, func()) {
	if migrateHooks.ticker != nil {
		return migrateHooks.ticker(p.interval())
	}
	t := time.NewTicker(p.interval())
	return t.C, t.Stop
}

// start is called once the keys to copy are known.
func (p *migrateProgress) start(s migrateStats) {
	p.begin = p.now()
	p.last = p.begin
	if p.tty && s.total > 0 {
		p.draw(s)
	}
}

// update reports s if the last report is at least an interval old. It
// is called for every finished key and on every tick, so the report goes
// on (unchanged) while a slow store holds up every key.
func (p *migrateProgress) update(s migrateStats) {
	now := p.now()
	if now.Sub(p.last) < p.interval() {
		return
	}
	p.last = now
	if p.tty {
		p.draw(s)
		return
	}
	line := fmt.Sprintf("Migrated %6d keys ...", s.migrated())
	if skipped := s.processed() - s.migrated(); skipped > 0 {
		line += fmt.Sprintf(" (%d skipped)", skipped)
	}
	fmt.Fprintln(p.w, line)
}

// finish draws the final state of the bar and ends its line, so that
// what follows starts on a line of its own.
func (p *migrateProgress) finish(s migrateStats) {
	if !p.tty || p.begin.IsZero() || s.total == 0 {
		return
	}
	p.draw(s)
	fmt.Fprintln(p.w)
}

// draw redraws the bar:
//
//	4213/10000 [==========>             ]  42%   3520 keys/s  ETA 2s
func (p *migrateProgress) draw(s migrateStats) {
	const barWidth = 30
	done, total := s.processed(), s.total
	filled := barWidth * done / max(total, 1)
	bar := strings.Repeat("=", filled)
	if filled < barWidth {
		bar += ">" + strings.Repeat(" ", barWidth-filled-1)
	}
	elapsed := p.now().Sub(p.begin)
	rate, eta := "", "ETA --"
	if elapsed > 0 && done > 0 {
		r := float64(done) / elapsed.Seconds()
		rate = fmt.Sprintf("%6.0f keys/s", r)
		left := time.Duration(float64(total-done) / r * float64(time.Second))
		eta = "ETA " + left.Round(time.Second).String()
	} else {
		rate = fmt.Sprintf("%6s keys/s", "-")
	}
	digits := len(fmt.Sprint(total))
	line := fmt.Sprintf("%*d/%d [%s] %3d%% %s  %s", digits, done, total, bar, 100*done/max(total, 1), rate, eta)
	pad := max(p.width-len(line), 0)
	p.width = len(line)
	fmt.Fprintf(p.w, "\r%s%s", line, strings.Repeat(" ", pad))
}
