package approvals

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/emulator-tests/ondemand"
	"github.com/coffer-backup/coffer/functions/registry"
	"github.com/coffer-backup/coffer/shared/clocktest"
	"github.com/coffer-backup/coffer/shared/wire"
)

var emu ondemand.Emulators

func TestMain(m *testing.M) { os.Exit(emu.Main(m)) }

func newStore(t *testing.T) (*Store, *clocktest.Fake) {
	c := clocktest.New(time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC))
	s := New(emu.Tables(t), c.Now, 0)
	if err := s.EnsureTable(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s, c
}

func request(vault string) Request {
	return Request{VaultID: vault, Operation: "delete a recovery point of pc-01", Method: "DELETE",
		Path: "/vaults/" + vault + "/machines/m/points/p", Reason: "ticket 42", RequestedBy: "ann@contoso.com", Rank: int(registry.RoleContributor)}
}

func TestDecisions(t *testing.T) {
	s, c := newStore(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		after   time.Duration
		by      string
		approve bool
		want    error
		status  string
	}{
		{"another admin approves", time.Hour, "bob@contoso.com", true, nil, wire.ApprovalApproved},
		{"another admin rejects", 0, "bob@contoso.com", false, nil, wire.ApprovalRejected},
		{"the requester approves", 0, "ANN@contoso.com", true, ErrSelf, wire.ApprovalPending},
		{"the requester rejects", 0, "ann@contoso.com", false, ErrSelf, wire.ApprovalPending},
		{"just before the limit", DefaultTTL - time.Second, "bob@contoso.com", true, nil, wire.ApprovalApproved},
		{"at the limit", DefaultTTL, "bob@contoso.com", true, ErrExpired, wire.ApprovalExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vault := registry.NewID()
			r, err := s.Create(ctx, request(vault))
			if err != nil || r.Status != wire.ApprovalPending || !r.ExpiresAt.Equal(c.Now().Add(DefaultTTL)) || r.Reason != "ticket 42" {
				t.Fatalf("created %+v, %v", r, err)
			}
			c.Advance(tc.after)
			_, err = s.Decide(ctx, vault, r.ID, tc.by, tc.approve, "ok")
			if !errors.Is(err, tc.want) {
				t.Fatalf("decide: %v, want %v", err, tc.want)
			}
			got, err := s.Get(ctx, vault, r.ID)
			if err != nil || got.Status != tc.status {
				t.Fatalf("status %q (%v), want %q", got.Status, err, tc.status)
			}
			if ls, _ := s.List(ctx, vault, tc.status, 0); len(ls) != 1 {
				t.Fatalf("list %s: %+v", tc.status, ls)
			}
		})
	}
}

// Of concurrent approvals exactly one wins; the others learn who decided.
func TestConcurrentApprovalsOneWins(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	vault := registry.NewID()
	r, err := s.Create(ctx, request(vault))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.Decide(ctx, vault, r.ID, "sec"+string(rune('a'+i)), true, "")
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, ErrDecided):
			t.Fatal(err)
		}
	}
	if won != 1 {
		t.Fatalf("%d approvals won: %v", won, errs)
	}
	f, err := s.Finish(ctx, vault, r.ID, wire.ApprovalResult{Status: 200})
	if err != nil || f.Status != wire.ApprovalExecuted {
		t.Fatalf("finish: %+v %v", f, err)
	}
	if _, err := s.Finish(ctx, vault, r.ID, wire.ApprovalResult{Status: 200}); !errors.Is(err, ErrDecided) {
		t.Fatalf("second finish: %v", err)
	}
	if _, err := s.Decide(ctx, vault, r.ID, "secz", true, ""); !errors.Is(err, ErrDecided) {
		t.Fatalf("approve after it ran: %v", err)
	}
}

func TestBadInput(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	if _, err := s.Get(ctx, "v", "x'or'1"); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	r := request(registry.NewID())
	r.Reason = "a\x00b"
	if _, err := s.Create(ctx, r); !errors.Is(err, ErrInvalid) {
		t.Fatal(err)
	}
}

// An approved request whose run never recorded an outcome (the control
// plane stopped) is marked failed once it is InterruptedAfter old: it is
// not shown as running for ever, and nothing can run or finish it again.
func TestInterruptedRunsAreMarkedFailed(t *testing.T) {
	s, c := newStore(t)
	ctx := context.Background()
	vault := registry.NewID()
	cut, err := s.Create(ctx, request(vault))
	if err != nil {
		t.Fatal(err)
	}
	ran, err := s.Create(ctx, request(vault))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []Stored{cut, ran} {
		if _, err := s.Decide(ctx, vault, r.ID, "bob@contoso.com", true, ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Finish(ctx, vault, ran.ID, wire.ApprovalResult{Status: 200}); err != nil {
		t.Fatal(err)
	}
	mine := func(ms []Stored) []string {
		var ids []string
		for _, m := range ms {
			if m.VaultID == vault {
				ids = append(ids, m.ID)
			}
		}
		return ids
	}
	c.Advance(InterruptedAfter - time.Minute)
	if ms, err := s.MarkInterrupted(ctx, c.Now().Add(-InterruptedAfter)); err != nil || len(mine(ms)) != 0 {
		t.Fatalf("a run still within its time was marked: %v, %v", mine(ms), err)
	}
	c.Advance(2 * time.Minute)
	ms, err := s.MarkInterrupted(ctx, c.Now().Add(-InterruptedAfter))
	if err != nil || len(mine(ms)) != 1 || mine(ms)[0] != cut.ID {
		t.Fatalf("marked %v (%v), want only %s", mine(ms), err, cut.ID)
	}
	got, err := s.Get(ctx, vault, cut.ID)
	if err != nil || got.Status != wire.ApprovalFailed || got.Result == nil || got.Result.Code != wire.CodeInterrupted {
		t.Fatalf("the interrupted request reads %+v (%v)", got, err)
	}
	if r, _ := s.Get(ctx, vault, ran.ID); r.Status != wire.ApprovalExecuted {
		t.Errorf("the request that ran is %s", r.Status)
	}
	if _, err := s.Finish(ctx, vault, cut.ID, wire.ApprovalResult{Status: 200}); !errors.Is(err, ErrDecided) {
		t.Errorf("a late outcome overwrote the interrupted mark: %v", err)
	}
	if _, err := s.Decide(ctx, vault, cut.ID, "eve@contoso.com", true, ""); !errors.Is(err, ErrDecided) {
		t.Errorf("the interrupted request was approved again: %v", err)
	}
	if ms, _ := s.MarkInterrupted(ctx, c.Now()); len(mine(ms)) != 0 {
		t.Errorf("marked twice: %v", mine(ms))
	}
}

// Sweep deletes requests that are over once they are older than the cutoff,
// and keeps the rest.
func TestSweepDeletesOnlyOldFinishedRequests(t *testing.T) {
	s, c := newStore(t)
	ctx := context.Background()
	vault := registry.NewID()
	mk := func(decide func(id string)) string {
		r, err := s.Create(ctx, request(vault))
		if err != nil {
			t.Fatal(err)
		}
		if decide != nil {
			decide(r.ID)
		}
		return r.ID
	}
	approve := func(id string) {
		if _, err := s.Decide(ctx, vault, id, "bob@contoso.com", true, ""); err != nil {
			t.Fatal(err)
		}
	}
	rejected := mk(func(id string) { s.Decide(ctx, vault, id, "bob@contoso.com", false, "") })
	executed := mk(func(id string) { approve(id); s.Finish(ctx, vault, id, wire.ApprovalResult{Status: 204}) })
	lapsed := mk(nil) // pending until its time limit
	running := mk(approve)
	c.Advance(400 * 24 * time.Hour)
	recent := mk(func(id string) { s.Decide(ctx, vault, id, "bob@contoso.com", false, "") })
	if _, err := s.Sweep(ctx, c.Now().Add(-KeepDecided)); err != nil {
		t.Fatal(err)
	}
	for id, kept := range map[string]bool{rejected: false, executed: false, lapsed: false, running: true, recent: true} {
		_, err := s.Get(ctx, vault, id)
		if gone := errors.Is(err, ErrNotFound); gone == kept {
			t.Errorf("request %s: kept %v, want %v (%v)", id, !gone, kept, err)
		}
	}
}
