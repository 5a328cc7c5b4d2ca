package slots

import "testing"

// Indexes are handed out in order, a released one is taken again first,
// as its last user left it, and the values stay where their index says.
func TestTable(t *testing.T) {
	var tb Table[struct{ gen, v int }]
	for want := range uint32(3) {
		i, p := tb.Take()
		if i != want || p.gen != 0 {
			t.Fatalf("Take = %d with %+v, want %d and a zero value", i, *p, want)
		}
		p.v = int(i) * 10
	}
	tb.At(1).gen = 7
	tb.Put(1)
	tb.Put(0)
	if i, p := tb.Take(); i != 0 || p.v != 0 {
		t.Fatalf("Take = %d with %+v, want the latest released, 0", i, *p)
	}
	if i, p := tb.Take(); i != 1 || p.gen != 7 || p.v != 10 {
		t.Fatalf("Take = %d with %+v, want 1 as it was left", i, *p)
	}
	if i, _ := tb.Take(); i != 3 {
		t.Fatalf("Take = %d with none released, want a new index, 3", i)
	}
	if tb.At(2).v != 20 {
		t.Fatalf("At(2) = %+v", *tb.At(2))
	}
}
