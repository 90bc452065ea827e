package namelock

import (
	"sync"
	"testing"
)

func TestSet(t *testing.T) {
	t.Parallel()
	var s Set
	var wg sync.WaitGroup
	var counts [2]int // one counter per name: distinct memory
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			unlock := s.Lock([]string{"a", "b"}[i%2])
			counts[i%2]++ // races (see -race) unless Lock excludes other users of the name
			unlock()
		}()
	}
	wg.Wait()
	s.mu.Lock()
	left := len(s.m)
	s.mu.Unlock()
	if counts[0] != 100 || counts[1] != 100 || left != 0 {
		t.Errorf("counts %v, %d entries left; want 100 each and none", counts, left)
	}
}
