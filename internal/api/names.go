package api

// MaxNameLen is the maximum length of a key, policy or identity name.
const MaxNameLen = 80

// ValidName reports whether s is a valid key, policy or identity name:
// 1 to 80 characters of [0-9A-Za-z_-], '-' neither first nor last, and not
// exactly "_".
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > MaxNameLen || s == "_" {
		return false
	}
	if s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	return nameChars(s)
}

// ValidPattern reports whether s is a valid listing pattern: the empty
// string, exactly "*", or a name-like string of at most 80 characters in
// which '*' may appear only as the last character.
func ValidPattern(s string) bool {
	if s == "" || s == "*" {
		return true
	}
	if len(s) > MaxNameLen || s == "_" {
		return false
	}
	body := s
	if body[len(body)-1] == '*' {
		body = body[:len(body)-1]
	}
	if body == "" || body[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	return nameChars(body)
}

// nameChars reports whether every byte of s is one of [0-9A-Za-z_-].
func nameChars(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
