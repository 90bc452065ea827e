package keystore

import (
	"context"
	"fmt"
)

// Unjoin returns the errors joined in err by errors.Join (at any depth),
// or err itself: the single problems a [Config.Validate] reports.
func Unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, Unjoin(e)...)
		}
		return out
	}
	return []error{err}
}

// Prepare is the common start of a [Config.Connect]: it returns ctx's
// error if ctx is done, and c.Validate's error prefixed with name (e.g.
// "fs: ") if the configuration is invalid.
func Prepare(ctx context.Context, name string, c interface{ Validate() error }) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := c.Validate(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}
