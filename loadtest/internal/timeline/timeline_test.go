package timeline

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestBuilder(t *testing.T) {
	start := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	b := NewBuilder(start)
	for i := range 100 { // second 0: 1 … 100 ms, every 10th a degraded 429
		b.Add(start.Add(time.Duration(i)*time.Millisecond), time.Duration(i+1)*time.Millisecond, 200+229*btoi(i%10 == 0), i%10 == 0)
	}
	b.Add(start.Add(2500*time.Millisecond), 7*time.Millisecond, 0, false) // second 1 stays empty
	b.Add(start.Add(-time.Millisecond), 3*time.Millisecond, 200, false)   // before the start: second 0
	b.Fault("stall", start.Add(1250*time.Millisecond), start.Add(2*time.Second))
	b.Fault("blip", start.Add(2*time.Second), start.Add(time.Second)) // ends before it starts: zero width
	b.End(start.Add(2750 * time.Millisecond))
	tl := b.Timeline("s")

	if got := len(tl.Seconds); got != 3 {
		t.Fatalf("seconds: got %d; want 3", got)
	}
	s0, s1, s2 := tl.Seconds[0], tl.Seconds[1], tl.Seconds[2]
	if s0.Requests != 101 || s0.Codes["200"] != 91 || s0.Codes["429"] != 10 || s0.Degraded != 10 {
		t.Errorf("second 0: got %+v; want 101 requests, 200:91 429:10, 10 degraded", s0)
	}
	// 101 latencies 1 … 100 ms and 3 ms: the 51st is 50 ms, the 100th 99 ms.
	if s0.P50Ms != 50 || s0.P99Ms != 99 {
		t.Errorf("second 0: got P50 %v P99 %v; want 50, 99", s0.P50Ms, s0.P99Ms)
	}
	if s1.Requests != 0 || s1.T != 1 {
		t.Errorf("second 1: got %+v; want T 1 without requests", s1)
	}
	if s2.Codes["0"] != 1 || s2.P99Ms != 7 || s2.Length != 0.75 {
		t.Errorf("second 2: got %+v; want one no-response of 7 ms, 0.75 s long (the end)", s2)
	}
	if s0.Length != 1 || s1.Length != 1 {
		t.Errorf("lengths: got %v, %v; want 1 but for the last second", s0.Length, s1.Length)
	}
	want := []Window{{"stall", 1.25, 2}, {"blip", 2, 2}}
	if len(tl.Windows) != 2 || tl.Windows[0] != want[0] || tl.Windows[1] != want[1] {
		t.Errorf("windows: got %+v; want %+v", tl.Windows, want)
	}
}

func TestBuilderStartsAtFirstResult(t *testing.T) {
	first := time.Date(2026, 11, 29, 10, 0, 0, 900_000_000, time.UTC)
	b := NewBuilder(time.Time{})
	for _, ms := range []int{0, -3, 999, 1000} { // completion order: the second sent comes back after the first
		b.Add(first.Add(time.Duration(ms)*time.Millisecond), time.Millisecond, 200, false)
	}
	tl := b.Timeline("s")
	if len(tl.Seconds) != 2 || tl.Seconds[0].Requests != 3 || tl.Seconds[1].Requests != 1 {
		t.Errorf("got %+v; want 3 requests in the first second from the first result, 1 in the next", tl.Seconds)
	}
}

func TestStatusPerSecondOfAShortLastSecond(t *testing.T) {
	tl := Timeline{Seconds: []Second{
		{T: 0, Length: 1, Requests: 100, Codes: map[string]int{"200": 100}},
		{T: 1, Length: 0.25, Requests: 25, Codes: map[string]int{"200": 25}},
	}}
	c := statusChart(&tl)
	// Both seconds at 100 responses/s: a flat line, at the top tick.
	want := "M" + formatPx(c.x(0.5, 2)) + "," + formatPx(c.Top) + "L" + formatPx(c.x(1.5, 2)) + "," + formatPx(c.Top)
	if got := c.Lines[0].D; got != want {
		t.Errorf("200 path: got %s; want %s", got, want)
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// synthetic is 10 s at 100 requests/s, the P99 higher and every
// request a degraded 200 during a fault from 3 s to 5 s, no request in
// second 7.
func synthetic(name string) Timeline {
	tl := Timeline{Name: name, Windows: []Window{{Name: "stall <3s>", From: 3, To: 5}}}
	for i := range 10 {
		s := Second{T: i, Length: 1, Requests: 100, P50Ms: 0.8, P99Ms: 2, Codes: map[string]int{"200": 70, "429": 30}}
		if i == 3 || i == 4 {
			s.P99Ms, s.Codes, s.Degraded = 900, map[string]int{"200": 100}, 100
		}
		if i == 7 {
			s = Second{T: i, Codes: map[string]int{}}
		}
		tl.Seconds = append(tl.Seconds, s)
	}
	return tl
}

func TestWriteHTML(t *testing.T) {
	var b bytes.Buffer
	p := Page{Title: "chaos & more", Lines: []string{"run <1>"}, Timelines: []Timeline{synthetic(`1-stall<script>alert("x")</script>`)}}
	if err := p.WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()

	for _, bad := range []string{"<script", "http://", "https://", "src="} {
		if strings.Contains(strings.ReplaceAll(out, `xmlns="http://www.w3.org/2000/svg"`, ""), bad) {
			t.Errorf("page contains %q: want no script and nothing fetched", bad)
		}
	}
	for _, s := range []string{"&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;", "chaos &amp; more", "run &lt;1&gt;", "stall &lt;3s&gt;"} {
		if !strings.Contains(out, s) {
			t.Errorf("page lacks the escaped %q", s)
		}
	}

	// One path per series: P50 and P99; 200 and 429; degraded.
	series := regexp.MustCompile(`<path class="series" data-series="([^"]*)"`).FindAllStringSubmatch(out, -1)
	var names []string
	for _, m := range series {
		names = append(names, m[1])
	}
	if got, want := strings.Join(names, ","), "P50,P99,200,429,degraded"; got != want {
		t.Errorf("series: got %s; want %s", got, want)
	}
	// Second 7 has no request: the latency lines break there.
	p99 := regexp.MustCompile(`data-series="P99" stroke="[^"]*" d="([^"]*)"`).FindStringSubmatch(out)
	if p99 == nil || strings.Count(p99[1], "M") != 2 || strings.Count(p99[1], "L") != 7 {
		t.Errorf("P99 path: got %q; want 2 subpaths over 9 points", p99)
	}

	// The window 3 s – 5 s of 10 s on the plot's 80 … 1180 px: x 410,
	// 220 wide, in each of the 3 charts, and one swatch in each legend.
	band := `<rect class="fault" x="410.0" y="46.0" width="220.0" height="194.0">`
	if got := strings.Count(out, band); got != 3 {
		t.Errorf("fault bands %s: got %d; want 3", band, got)
	}
	if got := strings.Count(out, `<rect class="fault"`); got != 6 {
		t.Errorf("fault rects: got %d; want 6 (3 bands, 3 legend swatches)", got)
	}
	for _, label := range []string{"latency (ms, log scale)", "responses per second", "degraded (% of requests)", "time since the attack started (s)", "fault window"} {
		if got := strings.Count(out, ">"+label+"<"); got == 0 {
			t.Errorf("no text %q: want axes labelled with units and a legend", label)
		}
	}
	checkSVG(t, out, 3)
}

// checkSVG parses each <svg> element of page as XML: n of them, well formed.
func checkSVG(t *testing.T, page string, n int) {
	t.Helper()
	svgs := regexp.MustCompile(`(?s)<svg .*?</svg>`).FindAllString(page, -1)
	if len(svgs) != n {
		t.Fatalf("svg elements: got %d; want %d", len(svgs), n)
	}
	for i, s := range svgs {
		d := xml.NewDecoder(strings.NewReader(s))
		for {
			_, err := d.Token()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("svg %d is not well-formed XML: %v", i, err)
			}
		}
	}
}

func TestLatencyAxisCoversTheRange(t *testing.T) {
	tl := synthetic("s")
	c := latencyChart(&tl)
	var labels []string
	for _, tk := range c.YTicks {
		labels = append(labels, tk.Label)
	}
	// 0.8 ms … 900 ms: decades 0.1 … 1000.
	if got, want := strings.Join(labels, " "), "0.1 1 10 100 1000"; got != want {
		t.Errorf("latency ticks: got %s; want %s", got, want)
	}
	if top, bot := c.YTicks[len(c.YTicks)-1].Pos, c.YTicks[0].Pos; top != c.Top || bot != c.Bot {
		t.Errorf("latency ticks span %v … %v; want the plot's %v … %v", bot, top, c.Bot, c.Top)
	}
}

func TestNiceStep(t *testing.T) {
	for _, tc := range []struct{ raw, want float64 }{{0.3, 0.5}, {1, 1}, {1.2, 2}, {3, 5}, {7, 10}, {37.5, 50}, {0, 1}} {
		if got := niceStep(tc.raw); got != tc.want {
			t.Errorf("niceStep(%v): got %v; want %v", tc.raw, got, tc.want)
		}
	}
}
