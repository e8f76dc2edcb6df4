package timeline

import (
	"math"
)

// Series colours (colour-blind safe where it matters: P50 against P99,
// 200 against 429 and 503).
var (
	colorP50      = "#1f77b4"
	colorP99      = "#d62728"
	colorDegraded = "#9467bd"
	codeColors    = map[string]string{"200": "#2ca02c", "429": "#ff7f0e", "503": "#9467bd", "500": "#d62728", "502": "#8c564b", "504": "#e377c2", "0": "#111111"}
	otherColors   = []string{"#17becf", "#bcbd22", "#7f7f7f", "#1f77b4"}
)

// charts are tl's plots: latency, responses by status, degraded ratio.
func charts(tl *Timeline) []*chart {
	cs := []*chart{latencyChart(tl), statusChart(tl), degradedChart(tl)}
	cs[0].BandLabels = true
	for _, c := range cs {
		c.legend()
	}
	return cs
}

// latencyChart is P50 and P99 per second on a log axis: a stall's
// seconds and the milliseconds around them fit in one plot.
func latencyChart(tl *Timeline) *chart {
	c := frame(tl, "Latency per second (P50, P99)", "latency (ms, log scale)")
	lo, hi := math.Inf(1), 0.0
	for _, s := range tl.Seconds {
		if s.Requests > 0 {
			lo, hi = min(lo, max(s.P50Ms, 0.001)), max(hi, s.P99Ms)
		}
	}
	if hi == 0 {
		lo, hi = 0.1, 1
	}
	ds := decades(lo, max(hi, lo))
	bottom, top := math.Log10(ds[0]), math.Log10(ds[len(ds)-1])
	y := func(v float64) float64 {
		return c.Bot - (math.Log10(max(v, ds[0]))-bottom)/(top-bottom)*(c.Bot-c.Top)
	}
	for _, d := range ds {
		c.YTicks = append(c.YTicks, tick{Pos: y(d), Label: formatNum(d)})
	}
	end := tl.end()
	x := func(t float64) float64 { return c.x(t, end) }
	p50, p99 := make([]point, len(tl.Seconds)), make([]point, len(tl.Seconds))
	for i, s := range tl.Seconds {
		t, ok := float64(s.T)+0.5, s.Requests > 0
		p50[i], p99[i] = point{t, s.P50Ms, ok}, point{t, s.P99Ms, ok}
	}
	c.Lines = []line{{Name: "P50", Color: colorP50, D: path(p50, x, y)}, {Name: "P99", Color: colorP99, D: path(p99, x, y)}}
	return c
}

// statusChart is the responses of each second's requests by status, per
// second of the attack (a last second cut short counts for its length).
func statusChart(tl *Timeline) *chart {
	c := frame(tl, "Responses per second by status (0: no response)", "responses per second")
	codes := sortedCodes(tl)
	hi := 1.0
	for _, s := range tl.Seconds {
		for _, n := range s.Codes {
			hi = max(hi, perSecond(n, s))
		}
	}
	ticks := linearTicks(hi)
	top := ticks[len(ticks)-1]
	y := func(v float64) float64 { return c.Bot - v/top*(c.Bot-c.Top) }
	for _, v := range ticks {
		c.YTicks = append(c.YTicks, tick{Pos: y(v), Label: formatNum(v)})
	}
	end := tl.end()
	x := func(t float64) float64 { return c.x(t, end) }
	for i, code := range codes {
		pts := make([]point, len(tl.Seconds))
		for j, s := range tl.Seconds {
			pts[j] = point{float64(s.T) + 0.5, perSecond(s.Codes[code], s), true}
		}
		color, ok := codeColors[code]
		if !ok {
			color = otherColors[i%len(otherColors)]
		}
		c.Lines = append(c.Lines, line{Name: code, Color: color, D: path(pts, x, y)})
	}
	return c
}

// perSecond is n responses in second s, per second.
func perSecond(n int, s Second) float64 {
	if s.Length <= 0 || s.Length >= 1 {
		return float64(n)
	}
	return float64(n) / s.Length
}

// degradedChart is the share of each second's responses marked
// X-RateLimit-Status: degraded.
func degradedChart(tl *Timeline) *chart {
	c := frame(tl, "Degraded ratio per second (X-RateLimit-Status: degraded)", "degraded (% of requests)")
	y := func(v float64) float64 { return c.Bot - v/100*(c.Bot-c.Top) }
	for v := 0.0; v <= 100; v += 20 {
		c.YTicks = append(c.YTicks, tick{Pos: y(v), Label: formatNum(v)})
	}
	end := tl.end()
	x := func(t float64) float64 { return c.x(t, end) }
	pts := make([]point, len(tl.Seconds))
	for i, s := range tl.Seconds {
		pts[i] = point{float64(s.T) + 0.5, 0, s.Requests > 0}
		if s.Requests > 0 {
			pts[i].v = 100 * float64(s.Degraded) / float64(s.Requests)
		}
	}
	c.Lines = []line{{Name: "degraded", Color: colorDegraded, D: path(pts, x, y)}}
	return c
}
