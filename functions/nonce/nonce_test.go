package nonce

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/emulator-tests/ondemand"
)

var emu ondemand.Emulators

func TestMain(m *testing.M) { os.Exit(emu.Main(m)) }

func TestANonceIsAcceptedOnceThenSweptWhenStale(t *testing.T) {
	s := New(emu.Tables(t))
	ctx := context.Background()
	if err := s.EnsureTable(ctx); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	if err := s.Remember(ctx, "m-1", "00112233445566778899aabbccddeeff", at); err != nil {
		t.Fatal(err)
	}
	if err := s.Remember(ctx, "m-1", "00112233445566778899aabbccddeeff", at); !errors.Is(err, ErrReplay) {
		t.Fatalf("second use: %v, want ErrReplay", err)
	}
	// The same nonce from another machine is another request.
	if err := s.Remember(ctx, "m-2", "00112233445566778899aabbccddeeff", at); err != nil {
		t.Fatal(err)
	}
	n, err := s.Sweep(ctx, at.Add(time.Second))
	if err != nil || n != 2 {
		t.Fatalf("sweep: %d %v, want 2", n, err)
	}
	if err := s.Remember(ctx, "m-1", "00112233445566778899aabbccddeeff", at.Add(time.Hour)); err != nil {
		t.Fatalf("after the sweep: %v", err)
	}
}
