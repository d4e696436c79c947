package admincmd

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Time layouts: tables are read at a glance; detail views and expiries
// name the zone, as they decide what someone does next.
const (
	tableTime  = "2006-01-02 15:04"
	detailTime = "2006-01-02 15:04:05 MST"
)

func tableWhen(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.Local().Format(tableTime)
}

func detailWhen(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.Local().Format(detailTime)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// shortID is the first 12 digits of an ID, as `coffer points` shows them.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// kv writes label/value rows; a value of several lines keeps its column.
func kv(w io.Writer, rows ...[2]string) {
	for _, r := range rows {
		lines := strings.Split(r[1], "\n")
		fmt.Fprintf(w, "%s:\t%s\n", r[0], lines[0])
		for _, l := range lines[1:] {
			fmt.Fprintf(w, "\t%s\n", l)
		}
	}
}
