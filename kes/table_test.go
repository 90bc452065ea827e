package kes

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// parseCase is a case of testParse: in parses to want, or fails if
// wantErr (and then still gives want, the value of a failed parse).
type parseCase[T any] struct {
	name    string
	in      string
	want    T
	wantErr bool
}

// testParse runs each case as a parallel subtest of t; fname names parse
// in the messages.
func testParse[T any](t *testing.T, fname string, parse func(string) (T, error), tests []parseCase[T]) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parse(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("%s(%q) error = %v, want error %v", fname, tt.in, err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("%s(%q) mismatch (-want +got):\n%s", fname, tt.in, diff)
			}
		})
	}
}
