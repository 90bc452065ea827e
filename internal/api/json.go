package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"

	"github.com/openkes/openkes/kes"
)

const contentTypeJSON = "application/json"

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func getBuffer() *bytes.Buffer {
	b := bufPool.Get().(*bytes.Buffer)
	b.Reset()
	return b
}

func putBuffer(b *bytes.Buffer) {
	if b.Cap() > 64<<10 { // do not keep huge buffers alive
		return
	}
	bufPool.Put(b)
}

// WriteJSON writes v as a 200 response: Content-Type "application/json"
// (no charset), an explicit Content-Length and the body produced by Go's
// json.Encoder (HTML-sensitive characters escaped, trailing "\n").
//
// It returns the error of encoding v (then nothing has been written; the
// caller should answer with an error) or of writing to w (then the client
// is gone and nothing more can be done).
func WriteJSON(w http.ResponseWriter, v any) error {
	buf := getBuffer()
	defer putBuffer(buf)
	if err := json.NewEncoder(buf).Encode(v); err != nil {
		return err
	}
	return writeBody(w, http.StatusOK, buf.Bytes())
}

// WriteBytes writes the 200 response {"<key>":"<base64 value>"}\n, byte
// for byte what WriteJSON produces for a struct with one []byte field
// (a nil value encodes as null), without reflection; a version > 0 adds
// a last field "version":<version> (the key version of a rotated key,
// docs/keys.md). key must not need JSON escaping. The error is that of
// writing to w.
func WriteBytes(w http.ResponseWriter, key string, value []byte, version int) error {
	p := slicePool.Get().(*[]byte)
	b := append((*p)[:0], '{')
	b = appendBytesField(b, key, value)
	b = appendVersionField(b, version)
	err := writeBody(w, http.StatusOK, b)
	putSlice(p, b)
	return err
}

// WriteBytes2 is like WriteBytes for an object with two []byte fields.
func WriteBytes2(w http.ResponseWriter, key1 string, value1 []byte, key2 string, value2 []byte, version int) error {
	p := slicePool.Get().(*[]byte)
	b := append((*p)[:0], '{')
	b = appendBytesField(b, key1, value1)
	b = append(b, ',')
	b = appendBytesField(b, key2, value2)
	b = appendVersionField(b, version)
	err := writeBody(w, http.StatusOK, b)
	putSlice(p, b)
	return err
}

// appendVersionField ends an object: `,"version":<n>` if n > 0, then
// "}\n".
func appendVersionField(b []byte, n int) []byte {
	if n > 0 {
		b = append(b, `,"version":`...)
		b = strconv.AppendInt(b, int64(n), 10)
	}
	return append(b, '}', '\n')
}

var slicePool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func putSlice(p *[]byte, b []byte) {
	if cap(b) > 64<<10 {
		return
	}
	*p = b[:0]
	slicePool.Put(p)
}

func appendBytesField(b []byte, key string, value []byte) []byte {
	b = append(b, '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	if value == nil {
		return append(b, "null"...)
	}
	b = append(b, '"')
	b = base64.StdEncoding.AppendEncode(b, value)
	return append(b, '"')
}

// WriteError writes e as the error response of the original server:
// status e.Status(), Content-Type "application/json", an explicit
// Content-Length and the body {"message":"<text>"\n} — the JSON-encoded
// message (HTML escaping on) followed by a newline and the closing brace.
// Headers already set on w (e.g. Accept for a 405) are kept.
func WriteError(w http.ResponseWriter, e kes.Error) error {
	msg, err := json.Marshal(e.Error()) // strings always marshal
	if err != nil {
		msg = []byte(`"internal error"`)
	}
	b := make([]byte, 0, len(`{"message":`)+len(msg)+2)
	b = append(b, `{"message":`...)
	b = append(b, msg...)
	b = append(b, '\n', '}')
	return writeBody(w, e.Status(), b)
}

// WriteOK writes an empty 200 response: Content-Length 0 and no
// Content-Type.
func WriteOK(w http.ResponseWriter) {
	h := w.Header()
	h.Del("Content-Type")
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
}

// jsonContentType is shared by all responses: header values are replaced,
// never modified in place, by net/http and by this package.
var jsonContentType = []string{contentTypeJSON}

// contentLengths caches the Content-Length header values of small bodies.
var contentLengths = func() [][]string {
	v := make([][]string, 1024)
	for i := range v {
		v[i] = []string{strconv.Itoa(i)}
	}
	return v
}()

func writeBody(w http.ResponseWriter, status int, body []byte) error {
	h := w.Header()
	h["Content-Type"] = jsonContentType
	if n := len(body); n < len(contentLengths) {
		h["Content-Length"] = contentLengths[n]
	} else {
		h["Content-Length"] = []string{strconv.Itoa(n)}
	}
	w.WriteHeader(status)
	_, err := w.Write(body)
	return err
}

// DecodeJSON decodes the first JSON value of r into v with the rules of the
// original server: Content-Type is ignored, unknown fields are ignored,
// data after the first value is ignored, null leaves a field unset, and
// []byte fields must be standard padded base64. These are the semantics of
// json.Decoder.Decode, which DecodeJSON reproduces exactly.
//
// It returns any read or syntax error, including io.EOF for an empty body
// and the error of an http.MaxBytesReader whose limit was hit before the
// first value was complete; callers answer all of them with 400
// (ErrInvalidBody or ErrInvalidImportBody).
func DecodeJSON(r io.Reader, v any) error {
	p := slicePool.Get().(*[]byte)
	buf, err := readAll((*p)[:0], r)
	defer putSlice(p, buf)
	if err != nil {
		// Let a Decoder see the same bytes and the same read error: it
		// may still find a complete first value before the error.
		return json.NewDecoder(io.MultiReader(bytes.NewReader(buf), errReader{err})).Decode(v)
	}
	// Fast path: the body is exactly one JSON value (plus whitespace).
	// Unmarshal validates the whole input before it assigns anything, so
	// after a syntax error (e.g. trailing data) v is untouched and the
	// Decoder, which stops after the first value, decides.
	err = json.Unmarshal(buf, v)
	var syntax *json.SyntaxError
	if errors.As(err, &syntax) {
		return json.NewDecoder(bytes.NewReader(buf)).Decode(v)
	}
	return err
}

// readAll appends everything r yields to buf.
func readAll(buf []byte, r io.Reader) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }
