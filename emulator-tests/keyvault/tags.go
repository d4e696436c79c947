package keyvault

import (
	"strconv"
	"unicode/utf8"
)

// Key Vault's limits on a tag: its name up to 512 characters, its value up
// to 256 (the count of tags, 15, is maxTags).
const (
	maxTagNameLen  = 512
	maxTagValueLen = 256
)

// checkTagLengths refuses a tag whose name or value is longer than Key Vault
// allows, with 400 BadParameter naming the tag. Lengths count characters,
// not bytes.
func checkTagLengths(tags map[string]*string) *response {
	for name, value := range tags {
		if n := utf8.RuneCountInString(name); n > maxTagNameLen {
			r := badParameter("The tag name " + strconv.Quote(truncate(name, 40)) + "... is " + strconv.Itoa(n) +
				" characters long; a tag name may have at most " + strconv.Itoa(maxTagNameLen) + " characters.")
			return &r
		}
		if value == nil {
			continue
		}
		if n := utf8.RuneCountInString(*value); n > maxTagValueLen {
			r := badParameter("The value of tag " + strconv.Quote(truncate(name, 40)) + " is " + strconv.Itoa(n) +
				" characters long; a tag value may have at most " + strconv.Itoa(maxTagValueLen) + " characters.")
			return &r
		}
	}
	return nil
}

// truncate keeps the first n characters of s.
func truncate(s string, n int) string {
	i := 0
	for j := range s {
		if i == n {
			return s[:j]
		}
		i++
	}
	return s
}
