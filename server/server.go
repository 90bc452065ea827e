// Package server implements the KES HTTPS server as a library: the v1 API,
// mTLS identities, policies, the key cache and the crypto operations.
//
// STUB written by the lead: the server helper implements it. Exported
// signatures below must stay as they are (the CLI codes against them).
package server

import (
	"context"
	"net"
)

// Server is a KES server. Create it with New.
type Server struct{}

// New validates conf and returns a Server that uses it. It creates the
// configured Keys. It does not listen yet.
func New(ctx context.Context, conf *Config) (*Server, error) { panic("unimplemented") }

// Serve accepts TCP connections on ln, wraps them in TLS and serves the
// API until ctx is cancelled (then shuts down gracefully) or Close is called.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error { panic("unimplemented") }

// Update atomically replaces the configuration. On error the old
// configuration stays in place and conf.Store is left open for the caller.
func (s *Server) Update(ctx context.Context, conf *Config) error { panic("unimplemented") }

// Close stops serving and closes the key store.
func (s *Server) Close() error { panic("unimplemented") }
