package main

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Stat is one number over the runs: its median and spread.
type Stat struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	N      int     `json:"n"`
}

// newStat is the median, minimum and maximum of xs; ok is false when xs is
// empty. The median of an even count is the mean of the middle two.
func newStat(xs []float64) (s Stat, ok bool) {
	if len(xs) == 0 {
		return Stat{}, false
	}
	sorted := slices.Clone(xs)
	sort.Float64s(sorted)
	n := len(sorted)
	s = Stat{Min: sorted[0], Max: sorted[n-1], N: n}
	if n%2 == 1 {
		s.Median = sorted[n/2]
	} else {
		s.Median = (sorted[n/2-1] + sorted[n/2]) / 2
	}
	return s, true
}

// statOf is the Stat of f over ms.
func statOf(ms []Measurement, f func(Measurement) float64) Stat {
	xs := make([]float64, len(ms))
	for i, m := range ms {
		xs[i] = f(m)
	}
	s, _ := newStat(xs)
	return s
}

// optStatOf is the Stat of f over the measurements where f is not nil;
// nil when it is nil for all of them.
func optStatOf(ms []Measurement, f func(Measurement) *float64) *Stat {
	var xs []float64
	for _, m := range ms {
		if v := f(m); v != nil {
			xs = append(xs, *v)
		}
	}
	s, ok := newStat(xs)
	if !ok {
		return nil
	}
	return &s
}

// format renders s as "median (min–max)" with prec decimals, or just the
// median when there is no spread; "–" for nil.
func (s *Stat) format(prec int) string {
	if s == nil {
		return "–"
	}
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', prec, 64) }
	out := f(s.Median)
	if s.N > 1 && f(s.Min) != f(s.Max) {
		out += " (" + f(s.Min) + "–" + f(s.Max) + ")"
	}
	return out
}

// ratio is a over b, nil unless both are there and b > 0.
func ratio(a, b *Stat) *float64 {
	if a == nil || b == nil || b.Median <= 0 {
		return nil
	}
	r := a.Median / b.Median
	return &r
}

// formatRatio renders a ratio as "×1.23", nil as "–".
func formatRatio(r *float64) string {
	if r == nil {
		return "–"
	}
	return fmt.Sprintf("×%.2f", *r)
}

// formatCodes renders status-code counts as "200:123 429:4", ascending,
// with transport errors (no response) as "err:N".
func formatCodes(codes map[int]int64, transportErrors int64) string {
	keys := make([]int, 0, len(codes))
	for c := range codes {
		keys = append(keys, c)
	}
	sort.Ints(keys)
	parts := make([]string, 0, len(keys)+1)
	for _, c := range keys {
		parts = append(parts, fmt.Sprintf("%d:%d", c, codes[c]))
	}
	if transportErrors > 0 {
		parts = append(parts, fmt.Sprintf("err:%d", transportErrors))
	}
	if len(parts) == 0 {
		return "–"
	}
	return strings.Join(parts, " ")
}
