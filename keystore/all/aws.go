//go:build !kes_omit_aws

package all

import (
	"github.com/openkes/openkes/keystore"
	"github.com/openkes/openkes/keystore/aws"
)

// The aws package does not register itself (like vault): importing it
// has no side effect on the registry. The kind is aws.Kind.
func init() { keystore.Register("aws.secretsmanager", aws.NewConfig) }
