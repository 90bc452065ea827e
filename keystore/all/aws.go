//go:build !kes_omit_aws

package all

import (
	"github.com/openkes/openkes/keystore"
	"github.com/openkes/openkes/keystore/aws"
)

// The aws package does not register itself, so that importing it (for
// example for its fake in awstest) has no side effect on the registry.
func init() { keystore.Register(aws.Kind, aws.NewConfig) }
