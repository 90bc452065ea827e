package h1

import (
	"bytes"
	"testing"
	"time"
)

// scanHeader scans the request line and header fields at the start of b.
// Lines end in "\n" or "\r\n"; the header ends with an empty line.
func scanHeader(b []byte) headerScan {
	var h headerScan
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return h
	}
	b = b[i+1:] // the request line
	inHost := false
	var hostValue []byte // the first Host value as textproto joins it
	for {
		i = bytes.IndexByte(b, '\n')
		if i < 0 {
			return h
		}
		line := b[:i]
		b = b[i+1:]
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		if len(line) == 0 {
			h.complete = true
			return h
		}
		if line[0] == ' ' || line[0] == '\t' {
			// A continuation line: textproto appends it, trimmed, with a
			// space, and trims the value's leading whitespace.
			if inHost && h.hosts == 1 {
				hostValue = append(append(hostValue, ' '), trimOWS(line)...)
				h.validHost = validHostHeader(bytes.TrimLeft(hostValue, " \t"))
			}
			continue
		}
		if colon := bytes.IndexByte(line, ':'); colon > 0 && bytes.IndexByte(line[:colon], ' ') >= 0 {
			h.badName = true
		}
		inHost = len(line) >= 5 && line[4] == ':' && asciiLower(line[0]) == 'h' &&
			asciiLower(line[1]) == 'o' && asciiLower(line[2]) == 's' && asciiLower(line[3]) == 't'
		if inHost {
			h.hosts++
			if h.hosts == 1 {
				hostValue = append([]byte(nil), trimOWS(line[5:])...)
				h.validHost = validHostHeader(hostValue)
			}
		}
	}
}

func TestKeepDeadline(t *testing.T) {
	t.Parallel()
	now := time.Now()
	const d = 64 * time.Second
	tests := []struct {
		name      string
		cur, want time.Time
		keep      bool
	}{
		{"same", now, now, true},
		{"slightly earlier", now.Add(-time.Second), now, true},
		{"too early", now.Add(-time.Second - 1), now, false},
		{"later", now.Add(time.Nanosecond), now, false},
		{"none set", time.Time{}, now, false},
		{"clear", now, time.Time{}, false},
	}
	for _, tt := range tests {
		if got := keepDeadline(tt.cur, tt.want, d); got != tt.keep {
			t.Errorf("%s: keepDeadline = %v, want %v", tt.name, got, tt.keep)
		}
	}
}

func TestScanHeader(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want headerScan
	}{
		{"GET / HTTP/1.1\r\nHost: x\r\n\r\n", headerScan{complete: true, hosts: 1, validHost: true}},
		{"GET / HTTP/1.1\nhOsT:  a.b:80 \n\nbody", headerScan{complete: true, hosts: 1, validHost: true}},
		{"GET / HTTP/1.1\r\nHost: x\r\n", headerScan{hosts: 1, validHost: true}},
		{"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", headerScan{complete: true, hosts: 1}},
		{"GET / HTTP/1.1\r\nHost: a\r\n b\r\n\r\n", headerScan{complete: true, hosts: 1}},
		{"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", headerScan{complete: true, hosts: 2, validHost: true}},
		{"GET / HTTP/1.1\r\nX-Host: a\r\nHostname: b\r\n\r\n", headerScan{complete: true}},
		{"GET / HTTP/1.1\r\nBad Name: a\r\n\r\n", headerScan{complete: true, badName: true}},
		{"GET / HTTP/1.1\r\nX: a b:c\r\n\r\n", headerScan{complete: true}},
		{"GET / HTT", headerScan{}},
	}
	for _, tt := range tests {
		if got := scanHeader([]byte(tt.in)); got != tt.want {
			t.Errorf("scanHeader(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
		if !tt.want.complete {
			continue
		}
		var s headerScanner
		for i := range len(tt.in) {
			s.feed([]byte{tt.in[i]})
		}
		if s.h != tt.want {
			t.Errorf("headerScanner fed %q byte by byte = %+v, want %+v", tt.in, s.h, tt.want)
		}
	}
}

func TestHasToken(t *testing.T) {
	t.Parallel()
	tests := []struct {
		v, token string
		want     bool
	}{
		{"close", "close", true},
		{"Keep-Alive, Close", "close", true},
		{"keep-alive,close", "close", true},
		{"closed", "close", false},
		{"x-close", "close", false},
		{"", "close", false},
		{" \t100-Continue ", "100-continue", true},
	}
	for _, tt := range tests {
		if got := hasToken(tt.v, tt.token); got != tt.want {
			t.Errorf("hasToken(%q, %q) = %v, want %v", tt.v, tt.token, got, tt.want)
		}
	}
}
