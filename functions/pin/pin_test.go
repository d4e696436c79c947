package pin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/emulator-tests/ondemand"
	"github.com/coffer-backup/coffer/shared/clocktest"
)

var emu ondemand.Emulators

func TestMain(m *testing.M) { os.Exit(emu.Main(m)) }

func newStore(t *testing.T) (*Store, *clocktest.Fake) {
	c := clocktest.New(time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC))
	s := New(emu.Tables(t), c.Now)
	if err := s.EnsureTable(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s, c
}

func TestPINWorksOnceWithinFiveMinutes(t *testing.T) {
	s, c := newStore(t)
	ctx := context.Background()
	for i, tc := range []struct {
		name  string
		after time.Duration
		uses  int
		ok    []bool
	}{
		{"at once, twice", 0, 2, []bool{true, false}},
		{"just before expiry", TTL - time.Second, 1, []bool{true}},
		{"at expiry", TTL, 1, []bool{false}},
	} {
		vault := fmt.Sprintf("vault-%d", i)
		t.Run(tc.name, func(t *testing.T) {
			p, err := s.Generate(ctx, vault, "admin")
			if err != nil {
				t.Fatal(err)
			}
			if len(p.PIN) != 8 || !p.ExpiresAt.Equal(c.Now().Add(TTL)) {
				t.Fatalf("PIN %+v", p)
			}
			c.Advance(tc.after)
			for i := range tc.uses {
				err := s.Use(ctx, vault, p.PIN, "test")
				if (err == nil) != tc.ok[i] || (err != nil && !errors.Is(err, ErrInvalid)) {
					t.Fatalf("use %d: %v, want ok=%v", i+1, err, tc.ok[i])
				}
			}
		})
	}
}

func TestPINBelongsToItsVaultAndIsWellFormed(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	p, err := s.Generate(ctx, "vault-a", "admin")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ vault, pin string }{{"vault-b", p.PIN}, {"vault-a", "1234"}, {"vault-a", "abcdefgh"}} {
		if err := s.Use(ctx, tc.vault, tc.pin, "test"); !errors.Is(err, ErrInvalid) {
			t.Fatalf("%s %q: %v, want ErrInvalid", tc.vault, tc.pin, err)
		}
	}
	if err := s.Use(ctx, "vault-a", p.PIN, "test"); err != nil {
		t.Fatalf("the right vault: %v", err)
	}
}

// Of many concurrent uses of one PIN, exactly one wins.
func TestConcurrentUsesOfOnePINOneWins(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	p, err := s.Generate(ctx, "vault-c", "admin")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if s.Use(ctx, "vault-c", p.PIN, "race") == nil {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d uses won, want exactly 1", wins)
	}
}
