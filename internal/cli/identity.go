package cli

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/openkes/openkes/kes"
)

const identityUsage = `Usage:
    kes identity <command> [options] [arguments]
    kes identity [<api-key> | <file>]

Commands:
    new                      Create an API key, and optionally a certificate.
    of                       Print the identity of an API key or certificate.
    info                     Describe an identity.
    ls                       List identities.

Without a command, kes identity prints the identity of an API key or a
certificate file, the API key of an Ed25519 private key file, or, without
arguments, a new API key.

Options:
    -h, --help               Print command line options.

Examples:
    $ kes identity new
    $ kes identity of client.crt
    $ kes identity info
`

var identityCommand = &command{
	name:   "identity",
	usage:  identityUsage,
	subs:   []*command{identityNewCommand, identityOfCommand, identityInfoCommand, identityLsCommand},
	legacy: runIdentityLegacy,
}

const identityNewUsage = `Usage:
    kes identity new [options] [<subject>]

Creates a new API key and prints it with its identity. The API key is a
secret; the identity is not: a server's admin lists it in the config
(admin.identity, or the identities of a policy) to grant the key access.

With --key and --cert, it also writes the API key's private key (PKCS#8
PEM, mode 0600) and a self-signed certificate for it (mode 0644), usable
as a client and as a server certificate. Its common name is the subject,
or else the identity.

Options:
    --key <path>             Write the private key to this file.
    --cert <path>            Write the certificate to this file.
    --ip <ip>                Add an IP address to the certificate. Repeatable.
    --dns <name>             Add a DNS name to the certificate. Repeatable.
    --expiry <duration>      Validity of the certificate, e.g. 720h or 365d.
                             Default: 720h.
    --encrypt                Encrypt the private key with a password, which
                             is asked for on the terminal.
    -f, --force              Overwrite existing files.
    --json                   Print {"api_key":..,"identity":..} as JSON.
    --color <when>           Colour the output: auto, never or always.
    -h, --help               Print command line options.

Examples:
  1. Create an API key for an application:
     $ kes identity new

  2. Create a server certificate and its key:
     $ kes identity new --key server.key --cert server.crt --ip 10.0.0.1 --dns kes.local kes.local

  3. Create a client certificate and key, valid for a year:
     $ kes identity new --key client.key --cert client.crt --expiry 365d my-app
`

// identityNewJSON is the output of 'kes identity new --json'.
type identityNewJSON struct {
	APIKey   string       `json:"api_key"`
	Identity kes.Identity `json:"identity"`
	KeyFile  string       `json:"key_file,omitempty"`
	CertFile string       `json:"cert_file,omitempty"`
}

var identityNewCommand = &command{
	name:  "new",
	usage: identityNewUsage,
	opts:  optJSON | optColor,
	args:  argRule{max: 1, what: "subject"},
	flags: func(fs *flag.FlagSet) runFunc {
		var (
			keyFile, certFile string
			ips, dnsNames     listFlag
			expiry            = "720h"
			encrypt, force    bool
		)
		stringFlag(fs, &keyFile, "key")
		stringFlag(fs, &certFile, "cert")
		fs.Var(&ips, "ip", "")
		fs.Var(&dnsNames, "dns", "")
		stringFlag(fs, &expiry, "expiry")
		boolFlag(fs, &encrypt, "encrypt")
		boolFlag(fs, &force, "f", "force")
		return func(ctx context.Context, c *call) error {
			if (keyFile == "") != (certFile == "") {
				return c.usagef("'--key' and '--cert' must be used together")
			}
			var certOnly []string
			fs.Visit(func(f *flag.Flag) {
				switch f.Name {
				case "ip", "dns", "expiry", "encrypt", "force", "f":
					certOnly = append(certOnly, f.Name)
				}
			})
			if keyFile == "" && len(certOnly) > 0 {
				return c.usagef("'--%s' requires '--key' and '--cert'", certOnly[0])
			}
			validity, err := parseExpiry(expiry)
			if err != nil {
				return c.usagef("invalid --expiry %q: %v", expiry, err)
			}
			var ipAddrs []net.IP
			for _, s := range ips {
				ip := net.ParseIP(s)
				if ip == nil {
					return c.usagef("invalid --ip %q: not an IP address", s)
				}
				ipAddrs = append(ipAddrs, ip)
			}

			key, err := kes.GenerateAPIKey(nil)
			if err != nil {
				return err
			}
			out := identityNewJSON{APIKey: key.String(), Identity: key.Identity()}
			if keyFile != "" {
				subject := key.Identity().String()
				if len(c.args) == 1 {
					subject = c.args[0]
				}
				err := writeKeyAndCert(c.env, key, keyFile, certFile, force, encrypt,
					kes.WithCommonName(subject),
					kes.WithDNSNames(dnsNames...),
					kes.WithIPAddresses(ipAddrs...),
					kes.WithValidity(validity),
					kes.WithServerAuth(),
				)
				if err != nil {
					return err
				}
				out.KeyFile, out.CertFile = keyFile, certFile
			}
			if c.json {
				return c.printJSON(out)
			}
			f := c.fields().add("API Key:", out.APIKey).add("Identity:", out.Identity.String())
			if keyFile != "" {
				f.add("Private key:", keyFile).add("Certificate:", certFile)
			}
			f.print("")
			if c.outTTY {
				fmt.Fprintf(c.stdout, "\n%s\n", c.style(sgrFaint).wrap(`The API key is a secret and is shown only now: keep it safe. The
identity is not secret: list it in the server's config (admin.identity or
a policy's identities) to grant the API key access. 'kes identity of'
computes it again.`))
			}
			return nil
		}
	},
}

// parseExpiry parses a validity: a Go duration or a number of days ("90d").
func parseExpiry(s string) (time.Duration, error) {
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseUint(days, 10, 16)
		if err != nil {
			return 0, errors.New("use a duration such as 720h or a number of days such as 90d")
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, errors.New("use a duration such as 720h or a number of days such as 90d")
		}
	}
	if d <= 0 {
		return 0, errors.New("the validity must be positive")
	}
	return d, nil
}

// writeKeyAndCert writes the API key's private key and a certificate for
// it. Existing files are only replaced with force; if writing the
// certificate fails, a key file created here is removed again.
func writeKeyAndCert(e *env, key kes.APIKey, keyFile, certFile string, force, encrypt bool, opts ...kes.CertificateOption) error {
	if !force {
		for _, f := range []struct{ what, name string }{{"private key", keyFile}, {"certificate", certFile}} {
			if _, err := os.Lstat(f.name); err == nil {
				return withHint(fmt.Errorf("%s file '%s' already exists", f.what, f.name), "pass --force to overwrite it")
			}
		}
	}
	cert, err := kes.GenerateCertificate(key, opts...)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key.Private())
	if err != nil {
		return err
	}
	defer clear(der)
	block := &pem.Block{Type: "PRIVATE KEY", Bytes: der}
	if encrypt {
		password, err := e.readPassword("Enter password for private key: ")
		if err != nil {
			return withHint(fmt.Errorf("cannot encrypt the private key: %w", err), "run kes on a terminal, or leave out --encrypt")
		}
		defer clear(password)
		if len(password) == 0 {
			return errors.New("the password must not be empty")
		}
		confirm, err := e.readPassword("Confirm password for private key: ")
		if err != nil {
			return fmt.Errorf("cannot encrypt the private key: %w", err)
		}
		defer clear(confirm)
		if string(password) != string(confirm) {
			return errors.New("passwords do not match")
		}
		//lint:ignore SA1019 RFC 1423 encryption is weak, but it is what KES servers and clients can read.
		if block, err = x509.EncryptPEMBlock(rand.Reader, "PRIVATE KEY", der, password, x509.PEMCipherAES256); err != nil {
			return err
		}
	}
	keyPEM := pem.EncodeToMemory(block)
	defer clear(keyPEM)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]})

	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	if err := writeFile(keyFile, keyPEM, flags, 0o600); err != nil {
		return err
	}
	if err := writeFile(certFile, certPEM, flags, 0o644); err != nil {
		if !force {
			os.Remove(keyFile)
		}
		return err
	}
	return nil
}

// writeFile writes data to a file opened with flags and perm. An existing
// file keeps its mode, so a --force overwrite of a key file must also
// narrow it.
func writeFile(name string, data []byte, flags int, perm fs.FileMode) error {
	f, err := os.OpenFile(name, flags, perm)
	if errors.Is(err, fs.ErrExist) {
		return withHint(fmt.Errorf("'%s' already exists", name), "pass --force to overwrite it")
	}
	if err != nil {
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

const identityOfUsage = `Usage:
    kes identity of [options] <api-key | file>...

Prints the identity of an API key (kes:v1:...), of a certificate file (its
first certificate), or of a private key file (the identity of every
certificate for that key). On a terminal each identity ends with a
newline; otherwise the identities are separated by newlines, without a
trailing one, so that "$(kes identity of ...)" is exactly the identity.

Options:
    -h, --help               Print command line options.

Examples:
    $ kes identity of kes:v1:ACQpoGqx3rHHjT938Hfu5hVVQJHZWSqVI2Xp1KlYxFVw
    $ kes identity of client.crt
`

var identityOfCommand = &command{
	name:  "of",
	usage: identityOfUsage,
	args:  argRule{min: 1, max: -1, what: "API key or certificate file"},
	run: func(ctx context.Context, c *call) error {
		var ids []string
		for _, arg := range c.args {
			id, err := identityOf(arg)
			if err != nil {
				return err
			}
			ids = append(ids, id.String())
		}
		c.printValue(strings.Join(ids, "\n"))
		return nil
	},
}

// printValue prints a value for people (with newline) or for programs
// (without).
func (e *env) printValue(s string) {
	if e.outTTY {
		s += "\n"
	}
	io.WriteString(e.stdout, s)
}

// identityOf returns the identity of an API key or a certificate or
// private key file.
func identityOf(arg string) (kes.Identity, error) {
	if strings.HasPrefix(arg, "kes:v1:") {
		key, err := kes.ParseAPIKey(arg)
		if err != nil {
			return "", fmt.Errorf("parsing API key: %w", err)
		}
		return key.Identity(), nil
	}
	data, err := os.ReadFile(arg)
	if err != nil {
		return "", withHint(fmt.Errorf("failed to read '%s': %w", arg, unwrapPathError(err)), "pass an API key (kes:v1:...) or a PEM certificate file")
	}
	var pub crypto.PublicKey
	for rest := data; ; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			break
		}
		switch {
		case block.Type == "CERTIFICATE":
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return "", fmt.Errorf("failed to parse certificate in '%s': %w", arg, err)
			}
			return kes.IdentityOf(cert), nil
		case pub == nil && strings.HasSuffix(block.Type, "PRIVATE KEY"):
			if key, err := parsePrivateKey(block); err == nil {
				pub = key.Public()
			}
		}
	}
	if pub != nil {
		spki, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return "", err
		}
		sum := sha256.Sum256(spki)
		return kes.Identity(hex.EncodeToString(sum[:])), nil
	}
	return "", fmt.Errorf("failed to parse certificate in '%s': no PEM-encoded certificate found", arg)
}

// unwrapPathError drops the path of an *fs.PathError, which the caller
// already names.
func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// parsePrivateKey parses an unencrypted PKCS#8, PKCS#1 or SEC 1 key.
func parsePrivateKey(block *pem.Block) (crypto.Signer, error) {
	//lint:ignore SA1019 only to refuse encrypted keys.
	if x509.IsEncryptedPEMBlock(block) || block.Type == "ENCRYPTED PRIVATE KEY" {
		return nil, errors.New("the private key is encrypted")
	}
	if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		if s, ok := k.(crypto.Signer); ok {
			return s, nil
		}
		return nil, fmt.Errorf("unsupported private key type %T", k)
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	if k, err := x509.ParseECPrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	return nil, errors.New("the private key is malformed")
}

// runIdentityLegacy runs "kes identity [<api-key> | <file>]":
// the identity of an API key or certificate, the API key of an Ed25519
// private key, or a new API key.
func runIdentityLegacy(ctx context.Context, c *call) error {
	e, args := c.env, c.args
	if len(args) > 1 {
		return c.usagef("too many arguments")
	}
	if len(args) == 0 {
		key, err := kes.GenerateAPIKey(nil)
		if err != nil {
			return err
		}
		if !e.outTTY {
			e.printValue(key.String())
			return nil
		}
		e.fields().add("API Key:", key.String()).add("Identity:", key.Identity().String()).print("")
		return nil
	}
	arg := args[0]
	if strings.HasPrefix(arg, "-") {
		return c.usagef("unknown option %q", arg)
	}
	if !strings.HasPrefix(arg, "kes:v1:") {
		if data, err := os.ReadFile(arg); err == nil {
			if key, ok, err := apiKeyOfFile(arg, data); ok {
				if err != nil {
					return err
				}
				e.printValue(key.String())
				return nil
			}
		}
	}
	id, err := identityOf(arg)
	if err != nil {
		return err
	}
	e.printValue(id.String())
	return nil
}

// apiKeyOfFile returns the API key of a file whose first PEM block is a
// private key; ok reports whether it is. Only Ed25519 keys are API keys.
func apiKeyOfFile(name string, data []byte) (key kes.APIKey, ok bool, err error) {
	block, _ := pem.Decode(data)
	if block == nil || !strings.HasSuffix(block.Type, "PRIVATE KEY") {
		return kes.APIKey{}, false, nil
	}
	priv, err := parsePrivateKey(block)
	if err != nil {
		return kes.APIKey{}, true, fmt.Errorf("failed to parse private key in '%s': %w", name, err)
	}
	ed, isEd := priv.(ed25519.PrivateKey)
	if !isEd {
		return kes.APIKey{}, true, fmt.Errorf("the private key in '%s' is an %s key: only Ed25519 keys have an API key", name, keyType(priv))
	}
	seed := ed.Seed()
	defer clear(seed)
	b := append([]byte{0}, seed...)
	defer clear(b)
	key, err = kes.ParseAPIKey("kes:v1:" + base64.StdEncoding.EncodeToString(b))
	return key, true, err
}

// keyType names the type of a private key.
func keyType(k crypto.Signer) string {
	switch k.Public().(type) {
	case ed25519.PublicKey:
		return "Ed25519"
	default:
		t := fmt.Sprintf("%T", k.Public())
		switch {
		case strings.Contains(t, "rsa"):
			return "RSA"
		case strings.Contains(t, "ecdsa"):
			return "ECDSA"
		}
		return t
	}
}

const identityInfoUsage = `Usage:
    kes identity info [options] [<identity> | <api-key> | <cert-file>]

Describes an identity: whether it is the admin, its policy and the
policy's rules. Without an argument, it describes the identity of the
client (its API key or certificate).

Options:
    --json                   Print the description as JSON.
` + clientOptions + `
Examples:
    $ kes identity info
    $ kes identity info 3ecfcdf38fcbe141ae26a1030f81e96b753365a46760ae6b578698a97c59fd22
    $ kes identity info client.crt --json
`

// identityInfoJSON is the JSON of 'kes identity info': the SDK's
// IdentityInfo and, when known, the rules of the identity's policy, as the
// server's self-describe API sends them.
type identityInfoJSON struct {
	Identity  kes.Identity        `json:"identity"`
	IsAdmin   bool                `json:"admin,omitempty"`
	Policy    string              `json:"policy,omitempty"`
	Allow     map[string]struct{} `json:"allow,omitempty"`
	Deny      map[string]struct{} `json:"deny,omitempty"`
	CreatedAt time.Time           `json:"created_at"`
	CreatedBy kes.Identity        `json:"created_by,omitempty"`
}

var identityInfoCommand = &command{
	name:  "info",
	usage: identityInfoUsage,
	opts:  optConn | optJSON | optColor,
	args:  argRule{max: 1, what: "identity"},
	run: func(ctx context.Context, c *call) error {
		var id kes.Identity
		if len(c.args) == 1 {
			id = kes.Identity(c.args[0])
			if !isIdentity(c.args[0]) {
				if _, err := os.Stat(c.args[0]); err == nil || strings.HasPrefix(c.args[0], "kes:v1:") {
					var err error
					if id, err = identityOf(c.args[0]); err != nil {
						return err
					}
				}
			}
		}
		s, err := c.connect()
		if err != nil {
			return err
		}
		out, err := describeIdentity(ctx, s, id)
		if err != nil {
			return err
		}
		if c.json {
			return c.printJSON(out)
		}
		role := "User"
		if out.IsAdmin {
			role = c.style(sgrBold).wrap("Admin")
		}
		f := c.fields().
			add("Identity", out.Identity.String()).
			add("Created At", dateTime(out.CreatedAt)).
			add("Role", role).
			add("Created By", orNone(out.CreatedBy.String()))
		if !out.IsAdmin {
			f.add("Policy", orNone(out.Policy))
		}
		f.print("")
		if out.Policy != "" && (out.Allow != nil || out.Deny != nil) {
			var b strings.Builder
			b.WriteByte('\n')
			c.writeRules(&b, "", out.Allow, out.Deny)
			io.WriteString(c.stdout, b.String())
		}
		return nil
	},
}

// describeIdentity describes the identity id, or the client's own
// identity if id is empty, with the rules of its policy where the client
// may read them.
func describeIdentity(ctx context.Context, s *session, id kes.Identity) (*identityInfoJSON, error) {
	var (
		info   *kes.IdentityInfo
		policy *kes.Policy
		err    error
	)
	if id == "" {
		if info, policy, err = s.client.DescribeSelf(ctx); err != nil {
			return nil, s.fail(err, "failed to describe identity %s", s.identity)
		}
		if info.Identity == "" {
			info.Identity = s.identity
		}
	} else {
		if info, err = s.client.DescribeIdentity(ctx, id); err != nil {
			return nil, s.fail(err, "failed to describe identity %s", id)
		}
		if info.Policy != "" {
			// Best effort: the client may not be allowed to read it.
			policy, _ = s.client.GetPolicy(ctx, info.Policy)
		}
	}
	out := &identityInfoJSON{
		Identity:  info.Identity,
		IsAdmin:   info.IsAdmin,
		Policy:    info.Policy,
		CreatedAt: info.CreatedAt,
		CreatedBy: info.CreatedBy,
	}
	if policy != nil {
		out.Allow, out.Deny = policy.Allow, policy.Deny
	}
	return out, nil
}

const identityLsUsage = `Usage:
    kes identity ls [options] [<pattern>]

Lists the identities that match the pattern: a prefix, optionally ending
in '*'. Without a pattern, all identities are listed: the admin and the
identities of all policies.

Options:
    --json                   Print the identities as a JSON array.
` + clientOptions + `
Examples:
    $ kes identity ls
    $ kes identity ls --json
`

var identityLsCommand = listCommand(identityLsUsage, identityListing)
