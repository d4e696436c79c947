package logging

import (
	"fmt"
	"os"
	"syscall"
)

// underJournald reports whether stderr is the journal stream systemd gave
// us. JOURNAL_STREAM is inherited by children whose stderr may be elsewhere,
// so its device:inode must match stderr's, as sd_journal_stream_fd(3) advises.
func underJournald() bool {
	v := os.Getenv("JOURNAL_STREAM")
	if v == "" {
		return false
	}
	var dev, ino uint64
	if _, err := fmt.Sscanf(v, "%d:%d", &dev, &ino); err != nil {
		return false
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(2, &st); err != nil {
		return false
	}
	return uint64(st.Dev) == dev && uint64(st.Ino) == ino
}
