package pin

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/emulator-tests/ondemand"
	"github.com/coffer-backup/coffer/functions/tables"
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
				err := s.Use(ctx, vault, p.PIN, "test", "admin")
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
		if err := s.Use(ctx, tc.vault, tc.pin, "test", "admin"); !errors.Is(err, ErrInvalid) {
			t.Fatalf("%s %q: %v, want ErrInvalid", tc.vault, tc.pin, err)
		}
	}
	if err := s.Use(ctx, "vault-a", p.PIN, "test", "admin"); err != nil {
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
			if s.Use(ctx, "vault-c", p.PIN, "race", "admin") == nil {
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

// wrongPIN is a PIN that differs from p.
func wrongPIN(p string, i int) string {
	w := fmt.Sprintf("%08d", i)
	if w == p {
		w = fmt.Sprintf("%08d", i+1)
	}
	return w
}

// After five wrong PINs the vault refuses every PIN, even the right one,
// and new PINs, for 15 minutes; the outstanding PIN stays void after that.
func TestFiveWrongPINsLockTheVault(t *testing.T) {
	s, c := newStore(t)
	ctx := context.Background()
	vault := uniqueVault("vault-lock")
	p, err := s.Generate(ctx, vault, "admin")
	if err != nil {
		t.Fatal(err)
	}
	for i := range MaxFailures - 1 {
		if err := s.Use(ctx, vault, wrongPIN(p.PIN, i), "guess", "machine branch-01 (m-1)"); !errors.Is(err, ErrInvalid) {
			t.Fatalf("wrong PIN %d: %v, want ErrInvalid", i+1, err)
		}
	}
	err = s.Use(ctx, vault, wrongPIN(p.PIN, 99), "guess", "admin eve@contoso.example")
	var le *LockedError
	if !errors.As(err, &le) || !le.Started || le.Failures != MaxFailures || !le.Until.Equal(c.Now().Add(Lockout)) {
		t.Fatalf("5th wrong PIN: %v (%+v), want the lockout to start", err, le)
	}
	if want := []string{"machine branch-01 (m-1)", "admin eve@contoso.example"}; fmt.Sprint(le.Sources) != fmt.Sprint(want) {
		t.Fatalf("sources %q, want %q", le.Sources, want)
	}
	if got := le.RetryAfter(c.Now()); got != Lockout+time.Second {
		t.Fatalf("retry after %s", got)
	}

	c.Advance(Lockout - time.Second)
	for what, try := range map[string]func() error{
		"the right PIN": func() error { return s.Use(ctx, vault, p.PIN, "delete", "admin") },
		"a new PIN":     func() error { _, err := s.Generate(ctx, vault, "admin"); return err },
	} {
		err := try()
		if !errors.As(err, &le) || le.Started || le.Busy {
			t.Fatalf("%s while locked: %v, want ErrLocked", what, err)
		}
	}

	c.Advance(time.Second)
	if err := s.Use(ctx, vault, p.PIN, "delete", "admin"); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "void") {
		t.Fatalf("the voided PIN after the lockout: %v", err)
	}
	p2, err := s.Generate(ctx, vault, "admin")
	if err != nil {
		t.Fatalf("a new PIN after the lockout: %v", err)
	}
	// The count started again: four wrong PINs do not lock.
	for i := range MaxFailures - 1 {
		if err := s.Use(ctx, vault, wrongPIN(p2.PIN, i), "guess", "admin"); !errors.Is(err, ErrInvalid) {
			t.Fatalf("wrong PIN %d after the lockout: %v", i+1, err)
		}
	}
	if err := s.Use(ctx, vault, p2.PIN, "delete", "admin"); err != nil {
		t.Fatalf("the new PIN: %v", err)
	}
}

// Wrong PINs are forgotten an hour after the first of them; right, used
// and expired PINs never count.
func TestOnlyWrongPINsWithinTheWindowCount(t *testing.T) {
	s, c := newStore(t)
	ctx := context.Background()
	vault := uniqueVault("vault-window")
	p, err := s.Generate(ctx, vault, "admin")
	if err != nil {
		t.Fatal(err)
	}
	for i := range MaxFailures - 1 {
		if err := s.Use(ctx, vault, wrongPIN(p.PIN, i), "guess", "admin"); !errors.Is(err, ErrInvalid) {
			t.Fatal(err)
		}
	}
	if err := s.Use(ctx, vault, p.PIN, "op", "admin"); err != nil {
		t.Fatalf("the right PIN after 4 wrong ones: %v", err)
	}
	for range 3 {
		if err := s.Use(ctx, vault, p.PIN, "op", "admin"); !errors.Is(err, ErrInvalid) || errors.Is(err, ErrLocked) {
			t.Fatalf("a used PIN: %v, want ErrInvalid without a lockout", err)
		}
	}
	c.Advance(FailureWindow)
	p2, err := s.Generate(ctx, vault, "admin")
	if err != nil {
		t.Fatal(err)
	}
	for i := range MaxFailures - 1 {
		if err := s.Use(ctx, vault, wrongPIN(p2.PIN, i), "guess", "admin"); !errors.Is(err, ErrInvalid) || errors.Is(err, ErrLocked) {
			t.Fatalf("wrong PIN %d in a new window: %v", i+1, err)
		}
	}
	if err := s.Use(ctx, vault, p2.PIN, "op", "admin"); err != nil {
		t.Fatalf("the right PIN: %v", err)
	}
}

// However many guessers try at once, at most five wrong PINs are checked
// before the vault locks, and exactly one try starts the lockout.
func TestConcurrentGuessersGetAtMostFiveTries(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	vault := uniqueVault("vault-swarm")
	p, err := s.Generate(ctx, vault, "admin")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg                      sync.WaitGroup
		mu                      sync.Mutex
		wrong, started, refused int
	)
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.Use(ctx, vault, wrongPIN(p.PIN, i), "guess", fmt.Sprintf("guesser-%d", i))
			var le *LockedError
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.As(err, &le) && le.Started:
				started++
			case errors.Is(err, ErrLocked):
				refused++
			case errors.Is(err, ErrInvalid):
				wrong++
			default:
				t.Errorf("guess %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if started+wrong > MaxFailures || started > 1 {
		t.Fatalf("%d wrong answers and %d lockouts for 40 guesses, want at most %d checked and one lockout", wrong, started, MaxFailures)
	}
	// Whatever the interleaving, the vault ends up locked once all five
	// places were used, or keeps refusing.
	if err := s.Use(ctx, vault, p.PIN, "op", "admin"); err == nil && started == 1 {
		t.Fatal("the right PIN worked after the lockout started")
	}
}

// A try whose request died gives its place back after a minute.
func TestAbandonedTriesLapse(t *testing.T) {
	s, c := newStore(t)
	ctx := context.Background()
	vault := uniqueVault("vault-abandoned")
	p, err := s.Generate(ctx, vault, "admin")
	if err != nil {
		t.Fatal(err)
	}
	for range MaxFailures {
		if err := s.reserve(ctx, vault); err != nil {
			t.Fatal(err)
		}
	}
	var le *LockedError
	if err := s.Use(ctx, vault, p.PIN, "op", "admin"); !errors.As(err, &le) || !le.Busy {
		t.Fatalf("with every place taken: %v, want busy", err)
	}
	c.Advance(tryTimeout + time.Second)
	if err := s.Use(ctx, vault, p.PIN, "op", "admin"); err != nil {
		t.Fatalf("after the tries lapsed: %v", err)
	}
}

// Sweep removes expired PINs and lockout rows that no longer matter, and
// keeps the rest.
func TestSweepKeepsWhatStillMatters(t *testing.T) {
	s, c := newStore(t)
	ctx := context.Background()
	vault := uniqueVault("vault-sweep")
	p, err := s.Generate(ctx, vault, "admin")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Use(ctx, vault, wrongPIN(p.PIN, 1), "guess", "admin"); !errors.Is(err, ErrInvalid) {
		t.Fatal(err)
	}
	if n, err := s.Sweep(ctx, c.Now()); err != nil || n != 0 {
		t.Fatalf("sweep now: %d, %v; want nothing removed", n, err)
	}
	c.Advance(FailureWindow + time.Hour + time.Minute)
	// Other tests share the table, so count this vault's rows only.
	if _, err := s.Sweep(ctx, c.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	left, err := tables.Query[entity](ctx, s.c, "PartitionKey eq '"+vault+"'", 0)
	if err != nil || len(left) != 0 {
		t.Fatalf("after the sweep %d rows are left (%v); want the PIN and the lockout row removed", len(left), err)
	}
}

// uniqueVault keeps runs (-count) and tests apart in the shared table.
func uniqueVault(prefix string) string {
	var b [4]byte
	rand.Read(b[:])
	return fmt.Sprintf("%s-%x", prefix, b)
}
