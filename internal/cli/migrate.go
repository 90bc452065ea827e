package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/openkes/openkes/config"
	"github.com/openkes/openkes/keystore"
	_ "github.com/openkes/openkes/keystore/all" // register the key-store backends
	"github.com/openkes/openkes/keystore/migrate"
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
	source     func(keystore.Store) keystore.Store            // wraps the source store
	target     func(keystore.Store) keystore.Store            // wraps the target store
	workers    int                                            // default: migrate.DefaultWorkers
}

var migrateCommand = &command{
	name:  "migrate",
	usage: migrateUsage,
	args:  argRule{max: 1, what: "pattern", deferred: true},
	flags: func(fs *flag.FlagSet) runFunc {
		var (
			from, to     string
			force, merge bool

			// Upstream can also migrate into a MinIO KMS server; these
			// flags are only recognised to say that this one cannot.
			server, enclave, apiKey string
			insecure                bool
		)
		stringFlag(fs, &from, "from")
		stringFlag(fs, &to, "to")
		boolFlag(fs, &force, "f", "force")
		boolFlag(fs, &merge, "merge")
		stringFlag(fs, &server, "s", "server")
		stringFlag(fs, &enclave, "e", "enclave")
		stringFlag(fs, &apiKey, "a", "api-key")
		boolFlag(fs, &insecure, "k", "insecure")
		return func(ctx context.Context, c *call) error {
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
			}
			if err := c.checkArgs(); err != nil {
				return err
			}
			pattern := "*"
			if len(c.args) == 1 {
				pattern = c.args[0]
			}
			if err := migrate.CheckPattern(pattern); err != nil {
				return c.usagef("invalid pattern '%s': %v", pattern, err)
			}
			mode := migrate.Fail
			switch {
			case merge:
				mode = migrate.Merge
			case force:
				mode = migrate.Force
			}
			return runMigrate(ctx, c.env, from, to, &migrate.Migration{Pattern: pattern, Mode: mode})
		}
	},
	// Without the flags that are only there to be refused.
	completeFlags:  []string{"--from", "--to", "-f", "--force", "--merge", "--help"},
	completeValues: []string{"--from", "--to"},
}

// runMigrate connects to the key stores of the config files from and to
// and runs m between them, with a progress report on stdout.
func runMigrate(ctx context.Context, e *env, from, to string, m *migrate.Migration) error {
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	src, err := openMigrateStore(ctx, e, "source", from, log, migrateHooks.source)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := openMigrateStore(ctx, e, "target", to, log, migrateHooks.target)
	if err != nil {
		return err
	}
	defer dst.Close()
	m.Source, m.Target, m.Workers = src, dst, migrateHooks.workers
	// Values stored unsealed in a sealed store are what --force reseals.
	m.ReadContext = seal.AllowUnsealed

	tty := e.outTTY
	if migrateHooks.isTerminal != nil {
		tty = migrateHooks.isTerminal(e)
	}
	p := newMigrateProgress(e.stdout, tty)
	tick, stopTicker := p.ticker()
	defer stopTicker()
	m.Progress, m.Tick = p.report, tick
	stats, err := m.Run(ctx)
	p.finish(stats)
	if err != nil {
		return migrateError(ctx, err, stats, m.Mode)
	}
	summary(e.stdout, &stats)
	return nil
}

// openMigrateStore reads the key store section of the config file at
// path and connects to the store, which the test hook wrap (if not nil)
// wraps. role ("source" or "target") prefixes errors.
func openMigrateStore(ctx context.Context, e *env, role, path string, log *slog.Logger, wrap func(keystore.Store) keystore.Store) (keystore.Store, error) {
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
	if wrap != nil {
		store = wrap(store)
	}
	return store, nil
}

// migrateError turns the error that stopped a migration into what the
// user needs to know: what happened and how to carry on.
func migrateError(ctx context.Context, err error, s migrate.Stats, mode migrate.Mode) error {
	var conflict *migrate.ConflictError
	switch {
	case errors.Is(err, migrate.ErrUnsealing):
		return withHint(err, "pass --force to store them unsealed anyway; --force also replaces keys whose value in the target differs")
	case errors.As(err, &conflict):
		err = fmt.Errorf("%w; use --merge to skip existing keys or --force to overwrite", err)
	}
	resume := "run the same command again to copy the remaining keys"
	if mode == migrate.Fail {
		resume = "run the same command with --merge to copy the remaining keys"
	}
	if ctx.Err() != nil {
		if s.Total == 0 {
			return errors.New("migration interrupted: no keys migrated")
		}
		return withHint(
			fmt.Errorf("migration interrupted: %d of %d keys migrated", s.Migrated(), s.Total),
			"the source is unchanged and every migrated key is complete; "+resume)
	}
	if s.Migrated() == 0 {
		return err
	}
	return withHint(err, fmt.Sprintf("%d of %d keys were migrated before the error; the source is unchanged; %s", s.Migrated(), s.Total, resume))
}

// summary prints the result of a successful migration.
func summary(w io.Writer, s *migrate.Stats) {
	var b strings.Builder
	if n := s.Migrated(); n == 0 {
		b.WriteString("Migration succeeded! No keys migrated.\n")
	} else {
		fmt.Fprintf(&b, "Migrated %d keys successfully!\n", n)
	}
	for _, line := range []struct {
		n      int
		format string
	}{
		{s.Count[migrate.Replaced], "Replaced %d keys whose value in the target differed.\n"},
		{s.Count[migrate.Identical], "Skipped %d keys already in the target with the same value.\n"},
		{s.Count[migrate.Kept], "Skipped %d keys that exist in the target with a different value.\n"},
		{s.Count[migrate.Vanished], "Skipped %d keys deleted from the source during the migration.\n"},
	} {
		if line.n > 0 {
			fmt.Fprintf(&b, line.format, line.n)
		}
	}
	if len(s.Differ) > 0 {
		// Two different keys under one name are worth a look: data
		// encrypted with the source's key cannot be decrypted with the
		// target's.
		fmt.Fprintf(&b, "Kept the target's value of: %s", strings.Join(s.Differ, ", "))
		if more := s.Count[migrate.Kept] - len(s.Differ); more > 0 {
			fmt.Fprintf(&b, " and %d more", more)
		}
		b.WriteString("\n")
	}
	io.WriteString(w, b.String())
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

// report is the progress callback of the migration: its first call
// starts the report.
func (p *migrateProgress) report(s migrate.Stats) {
	if p.begin.IsZero() {
		p.start(s)
		return
	}
	p.update(s)
}

// start is called once the keys to copy are known.
func (p *migrateProgress) start(s migrate.Stats) {
	p.begin = p.now()
	p.last = p.begin
	if p.tty && s.Total > 0 {
		p.draw(s)
	}
}

// update reports s if the last report is at least an interval old. It
// is called for every finished key and on every tick, so the report goes
// on (unchanged) while a slow store holds up every key.
func (p *migrateProgress) update(s migrate.Stats) {
	now := p.now()
	if now.Sub(p.last) < p.interval() {
		return
	}
	p.last = now
	if p.tty {
		p.draw(s)
		return
	}
	line := fmt.Sprintf("Migrated %6d keys ...", s.Migrated())
	if skipped := s.Processed() - s.Migrated(); skipped > 0 {
		line += fmt.Sprintf(" (%d skipped)", skipped)
	}
	fmt.Fprintln(p.w, line)
}

// finish draws the final state of the bar and ends its line, so that
// what follows starts on a line of its own.
func (p *migrateProgress) finish(s migrate.Stats) {
	if !p.tty || p.begin.IsZero() || s.Total == 0 {
		return
	}
	p.draw(s)
	fmt.Fprintln(p.w)
}

// draw redraws the bar:
//
//	4213/10000 [==========>             ]  42%   3520 keys/s  ETA 2s
func (p *migrateProgress) draw(s migrate.Stats) {
	const barWidth = 30
	done, total := s.Processed(), s.Total
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
