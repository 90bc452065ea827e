package cli

import (
	"fmt"

	"github.com/openkes/openkes/internal/api"
)

// nameRules is the rule for key names, as the server checks it.
const nameRules = "a key name is 1 to 80 characters of A-Z, a-z, 0-9, '_' and '-', does not start or end with '-' and is not just '_'"

// checkKeyName reports a key name the server would refuse, in the
// server's words, before any request is sent: a name with '/' or '.'
// would otherwise reach another URL path and come back as "404 page not
// found".
func checkKeyName(name string) error {
	if api.ValidName(name) {
		return nil
	}
	return withHint(fmt.Errorf("key name '%s' is empty, too long or contains invalid characters", name), nameRules)
}
