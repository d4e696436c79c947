package logging

import (
	"fmt"
	"syscall"
	"testing"
)

func TestUnderJournald(t *testing.T) {
	var st syscall.Stat_t
	if err := syscall.Fstat(2, &st); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		env  string
		want bool
	}{
		{"", false},
		{"garbage", false},
		{fmt.Sprintf("%d:%d", st.Dev, st.Ino+1), false}, // inherited from a parent, stderr elsewhere
		{fmt.Sprintf("%d:%d", st.Dev, st.Ino), true},
	}
	for _, tt := range tests {
		t.Run(tt.env, func(t *testing.T) {
			t.Setenv("JOURNAL_STREAM", tt.env)
			if got := underJournald(); got != tt.want {
				t.Errorf("underJournald() = %v, want %v", got, tt.want)
			}
		})
	}
}
