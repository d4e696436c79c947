package restorer

import (
	"fmt"
	"strings"
)

const noFollow = 0

// checkLocalName refuses names Windows would read as paths or devices.
func checkLocalName(name string) error {
	if strings.ContainsAny(name, `\:*?"<>|`) {
		return fmt.Errorf("the name %q cannot exist on Windows", name)
	}
	return nil
}
