package keystoretest

import (
	"context"

	"github.com/openkes/openkes/keystore"
)

// FaultyStore wraps a store and fails its calls on demand: Create, Get,
// Delete, List and Status first call Fault, if not nil, with the name of
// the method ("Create", "Get", ...), and return the error it returns
// instead of calling Store, if that is not nil. Fault may also panic.
// Close is Store's.
type FaultyStore struct {
	keystore.Store
	Fault func(method string) error
}

func (s *FaultyStore) fault(method string) error {
	if s.Fault == nil {
		return nil
	}
	return s.Fault(method)
}

// Create calls Fault("Create"), then Store.Create.
func (s *FaultyStore) Create(ctx context.Context, name string, value []byte) error {
	if err := s.fault("Create"); err != nil {
		return err
	}
	return s.Store.Create(ctx, name, value)
}

// Get calls Fault("Get"), then Store.Get.
func (s *FaultyStore) Get(ctx context.Context, name string) ([]byte, error) {
	if err := s.fault("Get"); err != nil {
		return nil, err
	}
	return s.Store.Get(ctx, name)
}

// Delete calls Fault("Delete"), then Store.Delete.
func (s *FaultyStore) Delete(ctx context.Context, name string) error {
	if err := s.fault("Delete"); err != nil {
		return err
	}
	return s.Store.Delete(ctx, name)
}

// List calls Fault("List"), then Store.List.
func (s *FaultyStore) List(ctx context.Context, prefix string, n int) ([]string, string, error) {
	if err := s.fault("List"); err != nil {
		return nil, "", err
	}
	return s.Store.List(ctx, prefix, n)
}

// Status calls Fault("Status"), then Store.Status.
func (s *FaultyStore) Status(ctx context.Context) (keystore.State, error) {
	if err := s.fault("Status"); err != nil {
		return keystore.State{}, err
	}
	return s.Store.Status(ctx)
}
