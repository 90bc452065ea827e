package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// printJSON writes v as JSON: indented with a trailing newline on a
// terminal, compact without trailing newline otherwise (as upstream, so
// that "$(kes ...)" and pipes get exactly the value).
func (e *env) printJSON(v any) error {
	b, err := marshalJSON(v, e.outTTY)
	if err != nil {
		return err
	}
	if e.outTTY {
		b = append(b, '\n')
	}
	_, err = e.stdout.Write(b)
	return err
}

// printJSONLine writes v as compact JSON and a newline: one value of a
// stream.
func (e *env) printJSONLine(v any) error {
	b, err := marshalJSON(v, false)
	if err != nil {
		return err
	}
	_, err = e.stdout.Write(append(b, '\n'))
	return err
}

// marshalJSON encodes v without HTML escaping (policy patterns and
// messages are shown as they are).
func marshalJSON(v any, indent bool) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if indent {
		enc.SetIndent("", "  ")
	}
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// printList prints names under a header, one per line, or nothing if
// there are none.
func (e *env) printList(header string, names []string) {
	if len(names) == 0 {
		return
	}
	var b strings.Builder
	b.WriteString(e.style(sgrBold, sgrUnderline).wrap(header))
	b.WriteByte('\n')
	for _, n := range names {
		b.WriteString(n)
		b.WriteByte('\n')
	}
	io.WriteString(e.stdout, b.String())
}

// fields prints label/value pairs with aligned values.
type fields struct {
	e     *env
	label style
	rows  [][2]string
}

func (e *env) fields() *fields { return &fields{e: e, label: e.style(sgrBold)} }

func (f *fields) add(label, value string) *fields {
	f.rows = append(f.rows, [2]string{label, value})
	return f
}

func (f *fields) print(indent string) {
	width := 0
	for _, r := range f.rows {
		width = max(width, len(r[0]))
	}
	var b strings.Builder
	for _, r := range f.rows {
		fmt.Fprintf(&b, "%s%s%s %s\n", indent, f.label.wrap(r[0]), strings.Repeat(" ", width-len(r[0])), r[1])
	}
	io.WriteString(f.e.stdout, b.String())
}

// dateTime formats t as upstream does: local time, to the second.
func dateTime(t time.Time) string {
	if t.IsZero() {
		return "unknown"
	}
	return t.Local().Format(time.DateTime)
}

// orNone returns s, or "-" if it is empty.
func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// humanDuration formats a long duration for people: "3d 4h", "2h 5m",
// "42s".
func humanDuration(d time.Duration) string {
	d = d.Round(time.Second)
	days := d / (24 * time.Hour)
	d -= days * 24 * time.Hour
	hours := d / time.Hour
	d -= hours * time.Hour
	minutes := d / time.Minute
	seconds := (d - minutes*time.Minute) / time.Second
	switch {
	case days > 0:
		return fmt.Sprintf("%dd %dh", days, hours)
	case hours > 0:
		return fmt.Sprintf("%dh %dm", hours, minutes)
	case minutes > 0:
		return fmt.Sprintf("%dm %ds", minutes, seconds)
	default:
		return fmt.Sprintf("%ds", seconds)
	}
}

// shortDuration formats a latency: "850µs", "12ms", "1.2s".
func shortDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(100 * time.Microsecond).String()
	default:
		return d.Round(10 * time.Millisecond).String()
	}
}

// byteSize formats a number of bytes with binary units.
func byteSize(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
