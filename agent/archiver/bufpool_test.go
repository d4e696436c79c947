package archiver

import "testing"

func TestBufPoolClasses(t *testing.T) {
	p := newBufPool(2 << 20)
	for _, tc := range []struct{ n, want int }{
		{0, 16 << 10}, {1, 16 << 10}, {16 << 10, 16 << 10}, {16<<10 + 1, 64 << 10},
		{300 << 10, 1 << 20}, {1<<20 + 1, 2 << 20}, {2 << 20, 2 << 20}, {9 << 20, 2 << 20},
	} {
		if got := cap(*p.get(tc.n)); got != tc.want {
			t.Errorf("get(%d): capacity %d, want %d", tc.n, got, tc.want)
		}
	}
	// A buffer comes back to its class and is handed out again; one grown
	// past its class is not kept.
	b := *p.get(60 << 10)
	b = append(b, 1, 2, 3)
	p.put(b)
	if again := *p.get(50 << 10); len(again) != 0 || cap(again) != 64<<10 {
		t.Fatalf("reused buffer: len %d cap %d, want an empty 64 KiB one", len(again), cap(again))
	}
	p.put(make([]byte, 0, 100<<10)) // no class of that size: dropped, no panic
	small := newBufPool(8 << 10)    // a chunker with tiny chunks: one class
	if got := cap(*small.get(5)); got != 8<<10 {
		t.Fatalf("single-class pool: capacity %d", got)
	}
}
