package cli

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/term"
)

// isTerminal reports whether v is an *os.File connected to a terminal.
func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	return ok && f != nil && term.IsTerminal(int(f.Fd()))
}

// errNoTerminal is returned when a password is needed but there is no
// terminal to ask for it.
var errNoTerminal = errors.New("cannot ask for a password: no terminal")

// promptPassword writes prompt to stderr and reads a password without
// echo from the controlling terminal, or from stdin if that is a
// terminal. It never reads a password from a pipe or file: a password on
// stdin would end up in shell histories and process listings.
func (e *env) promptPassword(prompt string) ([]byte, error) {
	if tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0); err == nil {
		defer tty.Close()
		if term.IsTerminal(int(tty.Fd())) {
			return readPassword(e.stderr, prompt, int(tty.Fd()))
		}
	}
	if f, ok := e.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return readPassword(e.stderr, prompt, int(f.Fd()))
	}
	return nil, errNoTerminal
}

func readPassword(w io.Writer, prompt string, fd int) ([]byte, error) {
	fmt.Fprint(w, prompt)
	pw, err := term.ReadPassword(fd)
	fmt.Fprintln(w) // the user's Enter was not echoed
	if err != nil {
		return nil, fmt.Errorf("reading password: %w", err)
	}
	return pw, nil
}

// SGR parameters of the styles we use.
const (
	sgrBold      = "1"
	sgrFaint     = "2"
	sgrUnderline = "4"
	sgrRed       = "31"
	sgrGreen     = "32"
	sgrYellow    = "33"
	sgrBlue      = "34"
	sgrCyan      = "36"
)

// style is an ANSI SGR style; the empty style prints text as is.
type style string

// wrap returns s in the style.
func (st style) wrap(s string) string {
	if st == "" || s == "" {
		return s
	}
	return "\x1b[" + string(st) + "m" + s + "\x1b[0m"
}

// colorOn decides about colour for a stream that is (or is not) a
// terminal: --color always and never decide; otherwise colour needs a
// terminal, no NO_COLOR and no TERM=dumb.
func (e *env) colorOn(tty bool) bool {
	switch e.color {
	case "always":
		return true
	case "never":
		return false
	}
	return tty && e.getenv("NO_COLOR") == "" && e.getenv("TERM") != "dumb"
}

// style returns the style sgr for stdout, or no style without colour.
func (e *env) style(sgr ...string) style {
	if !e.colorOn(e.outTTY) {
		return ""
	}
	return joinSGR(sgr)
}

// errStyle returns the style sgr for stderr, or no style without colour.
func (e *env) errStyle(sgr ...string) style {
	if !e.colorOn(e.errTTY) {
		return ""
	}
	return joinSGR(sgr)
}

func joinSGR(sgr []string) style {
	var s string
	for i, p := range sgr {
		if i > 0 {
			s += ";"
		}
		s += p
	}
	return style(s)
}
