package timeline

import (
	"math"
	"slices"
	"strconv"
	"strings"
)

// Chart geometry, in px: wide enough for a 1280 px window.
const (
	chartW      = 1200
	chartH      = 290
	plotLeft    = 80
	plotRight   = chartW - 20
	plotTop     = 46
	plotBottom  = chartH - 50
	minBandW    = 3 // a fault over as soon as injected is still seen
	legendTextW = 7 // px a legend character takes, roughly
)

// chart is one plot as the template draws it; every coordinate is
// computed here.
type chart struct {
	Title, XLabel, YLabel string
	W, H                  int
	Left, Right, Top, Bot float64
	XTicks, YTicks        []tick
	Bands                 []band
	Lines                 []line
	Legend                []legendItem
	BandLabels            bool
}

// tick is an axis graduation at Pos px.
type tick struct {
	Pos   float64
	Label string
}

// band is a shaded fault window from X over W px.
type band struct {
	X, W float64
	Name string
}

// line is one series as an SVG path.
type line struct {
	Name, Color, D string
}

// legendItem places a series' name in the legend.
type legendItem struct {
	X           float64
	Name, Color string
	Band        bool
}

// frame is a chart's axes for timeline tl, without series.
func frame(tl *Timeline, title, yLabel string) *chart {
	c := &chart{Title: title, XLabel: "time since the attack started (s)", YLabel: yLabel,
		W: chartW, H: chartH, Left: plotLeft, Right: plotRight, Top: plotTop, Bot: plotBottom}
	end := tl.end()
	for _, v := range linearTicks(end) {
		c.XTicks = append(c.XTicks, tick{Pos: c.x(v, end), Label: formatNum(v)})
	}
	for _, w := range tl.Windows {
		x0, x1 := c.x(w.From, end), c.x(w.To, end)
		c.Bands = append(c.Bands, band{X: x0, W: max(x1-x0, minBandW), Name: w.Name})
	}
	return c
}

// x is the px of t seconds on an axis of end seconds.
func (c *chart) x(t, end float64) float64 { return c.Left + t/end*(c.Right-c.Left) }

// legend lays out the series' names left to right above the plot, the
// fault windows' swatch last.
func (c *chart) legend() {
	x := c.Left
	for _, l := range c.Lines {
		c.Legend = append(c.Legend, legendItem{X: x, Name: l.Name, Color: l.Color})
		x += 40 + legendTextW*float64(len(l.Name))
	}
	if len(c.Bands) > 0 {
		c.Legend = append(c.Legend, legendItem{X: x, Name: "fault window", Band: true})
	}
}

// point is a value at a second; ok false leaves a gap in the line.
type point struct {
	t  float64
	v  float64
	ok bool
}

// path is pts as SVG path data scaled by x and y: a gap starts a new
// subpath, and a lone point is drawn as a dot.
func path(pts []point, x, y func(float64) float64) string {
	var b strings.Builder
	run := 0
	for _, p := range pts {
		if !p.ok {
			if run == 1 {
				b.WriteString("h0.5")
			}
			run = 0
			continue
		}
		if run == 0 {
			b.WriteByte('M')
		} else {
			b.WriteByte('L')
		}
		b.WriteString(formatPx(x(p.t)) + "," + formatPx(y(p.v)))
		run++
	}
	if run == 1 {
		b.WriteString("h0.5")
	}
	return b.String()
}

// linearTicks are round values from 0 to at least hi, about 8 of them.
func linearTicks(hi float64) []float64 {
	step := niceStep(hi / 8)
	var ts []float64
	for v := 0.0; v <= hi+step/1e6; v += step {
		ts = append(ts, math.Round(v/step)*step)
	}
	return ts
}

// niceStep is the smallest of 1, 2 or 5 × 10ⁿ at least raw.
func niceStep(raw float64) float64 {
	if raw <= 0 {
		return 1
	}
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5} {
		if m*mag >= raw*(1-1e-9) {
			return m * mag
		}
	}
	return 10 * mag
}

// decades are the powers of ten from below lo to above hi (lo, hi > 0):
// a log axis' ticks.
func decades(lo, hi float64) []float64 {
	a, b := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if b <= a {
		b = a + 1
	}
	var ds []float64
	for e := a; e <= b; e++ {
		ds = append(ds, math.Pow(10, e))
	}
	return ds
}

// sortedCodes are the statuses seen anywhere in tl, numerically.
func sortedCodes(tl *Timeline) []string {
	var codes []string
	for _, s := range tl.Seconds {
		for c := range s.Codes {
			if !slices.Contains(codes, c) {
				codes = append(codes, c)
			}
		}
	}
	slices.SortFunc(codes, func(a, b string) int {
		x, _ := strconv.Atoi(a)
		y, _ := strconv.Atoi(b)
		return x - y
	})
	return codes
}

// formatNum is v without trailing zeros.
func formatNum(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) }

// formatPx is a coordinate to a tenth of a pixel.
func formatPx(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }
