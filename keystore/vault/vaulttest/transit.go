package vaulttest

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
)

// transitKey is a named transit key: one AES-256 key per version.
type transitKey struct {
	versions [][]byte // versions[0] is version 1
}

func newTransitKey() *transitKey {
	k := &transitKey{}
	k.rotate()
	return k
}

func (k *transitKey) rotate() {
	b := make([]byte, 32)
	rand.Read(b)
	k.versions = append(k.versions, b)
}

func gcm(key []byte) cipher.AEAD {
	block, err := aes.NewCipher(key)
	if err != nil {
		panic(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return aead
}

// RotateTransitKey adds a version to a transit key (creating the key if
// needed): new ciphertexts start with "vault:v<N>:", old ones still
// decrypt. It panics if mountPath is not a transit mount.
func (s *Server) RotateTransitKey(namespace, mountPath, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.namespaces[cleanPath(namespace)]
	var m *mount
	if n != nil {
		m = n.mounts[cleanPath(mountPath)]
	}
	if m == nil || m.kind != kindTransit {
		panic("vaulttest: no transit mount " + mountPath)
	}
	if k := m.transit[name]; k != nil {
		k.rotate()
		return
	}
	m.transit[name] = newTransitKey()
}

func (s *Server) transit(rq *request, m *mount, rel string) reply {
	action, name, _ := strings.Cut(rel, "/")
	if name == "" || strings.Contains(name, "/") {
		return errorReply(http.StatusNotFound, "no handler for route. route entry not found.")
	}
	switch action {
	case "encrypt":
		if rq.op != opUpdate {
			return errorReply(http.StatusMethodNotAllowed, msgUnsupported)
		}
		s.counts[CountEncrypt]++
		raw, ok := rq.body["plaintext"].(string)
		if !ok {
			return errorReply(http.StatusBadRequest, "missing plaintext to encrypt")
		}
		plaintext, err := base64.StdEncoding.DecodeString(raw)
		if err != nil {
			return errorReply(http.StatusBadRequest, "failed to base64-decode plaintext")
		}
		k := m.transit[name]
		if k == nil { // encrypt creates the key ("upsert")
			k = newTransitKey()
			m.transit[name] = k
		}
		version := len(k.versions)
		aead := gcm(k.versions[version-1])
		nonce := make([]byte, aead.NonceSize())
		rand.Read(nonce)
		sealed := aead.Seal(nonce, nonce, plaintext, nil)
		return dataReply(map[string]any{
			"ciphertext":  "vault:v" + strconv.Itoa(version) + ":" + base64.StdEncoding.EncodeToString(sealed),
			"key_version": version,
		})
	case "decrypt":
		if rq.op != opUpdate {
			return errorReply(http.StatusMethodNotAllowed, msgUnsupported)
		}
		s.counts[CountDecrypt]++
		ct, ok := rq.body["ciphertext"].(string)
		if !ok || ct == "" {
			return errorReply(http.StatusBadRequest, "missing ciphertext to decrypt")
		}
		k := m.transit[name]
		if k == nil {
			return errorReply(http.StatusBadRequest, "encryption key not found")
		}
		rest, ok := strings.CutPrefix(ct, "vault:v")
		if !ok {
			return errorReply(http.StatusBadRequest, "invalid ciphertext: no prefix")
		}
		vs, b64, ok := strings.Cut(rest, ":")
		version, err := strconv.Atoi(vs)
		if !ok || err != nil || version < 1 {
			return errorReply(http.StatusBadRequest, "invalid ciphertext: version number could not be decoded")
		}
		if version > len(k.versions) {
			return errorReply(http.StatusBadRequest, "invalid ciphertext: version is too new")
		}
		sealed, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return errorReply(http.StatusBadRequest, "invalid ciphertext: could not decode base64")
		}
		aead := gcm(k.versions[version-1])
		if len(sealed) < aead.NonceSize() {
			return errorReply(http.StatusBadRequest, "invalid ciphertext: nonce length")
		}
		plaintext, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], nil)
		if err != nil {
			return errorReply(http.StatusBadRequest, "cipher: message authentication failed")
		}
		return dataReply(map[string]any{"plaintext": base64.StdEncoding.EncodeToString(plaintext)})
	case "keys":
		switch rq.op {
		case opUpdate:
			if m.transit[name] == nil {
				m.transit[name] = newTransitKey()
			}
			return noContent
		case opRead:
			k := m.transit[name]
			if k == nil {
				return notFound
			}
			keys := map[string]any{}
			for i := range k.versions {
				keys[strconv.Itoa(i+1)] = 0
			}
			return dataReply(map[string]any{
				"name":           name,
				"type":           "aes256-gcm96",
				"latest_version": len(k.versions),
				"keys":           keys,
			})
		}
		return errorReply(http.StatusMethodNotAllowed, msgUnsupported)
	}
	return errorReply(http.StatusNotFound, "no handler for route. route entry not found.")
}
