package timeline

import (
	"context"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestChromiumRenders screenshots a report in headless Chromium (Debian's
// chromium) at 1280 px and checks the picture: a PNG of that width, not
// blank, with the plots' colours in it. It runs only with
// L1GW_REPORT_CHECK=1 (make report-check): Chromium is a large install
// and takes seconds to start. L1GW_REPORT_HTML names a report to check
// (its screenshot is written next to it, .png); without it, a synthetic
// report in a temporary directory.
func TestChromiumRenders(t *testing.T) {
	if os.Getenv("L1GW_REPORT_CHECK") != "1" {
		t.Skip("L1GW_REPORT_CHECK=1 (make report-check) runs it")
	}
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium: %v (apt-get install chromium; make report-check installs it)", err)
	}
	page, synth := os.Getenv("L1GW_REPORT_HTML"), false
	if page == "" {
		page, synth = filepath.Join(t.TempDir(), "report.html"), true
		if err := (Page{Title: "synthetic", Timelines: []Timeline{synthetic("1-stall")}}).WriteFile(page); err != nil {
			t.Fatal(err)
		}
	}
	abs, err := filepath.Abs(page)
	if err != nil {
		t.Fatal(err)
	}
	shot := strings.TrimSuffix(abs, filepath.Ext(abs)) + ".png"
	_ = os.Remove(shot)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium, "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars",
		"--user-data-dir="+t.TempDir(), "--screenshot="+shot, "--window-size=1280,2000", "file://"+abs)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
	img := decodePNG(t, shot)
	if w := img.Bounds().Dx(); w != 1280 {
		t.Errorf("screenshot width: got %d; want 1280", w)
	}
	if v := lumaVariance(img); v < 100 {
		t.Errorf("screenshot luma variance %.1f; want ≥ 100: a blank page?", v)
	}
	want := map[string][3]uint8{"P50 line": {0x1f, 0x77, 0xb4}}
	if synth {
		want["P99 line"] = [3]uint8{0xd6, 0x27, 0x28}
		want["fault window"] = [3]uint8{255, 237, 209} // #ff9900 at 18 % on white
	}
	for name, c := range want {
		if n := countNear(img, c, 12); n < 200 {
			t.Errorf("%s: %d pixels near rgb%v; want ≥ 200: the plot did not render", name, n, c)
		}
	}
	t.Logf("screenshot %s: %v", shot, img.Bounds().Size())
}

func decodePNG(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	return img
}

// lumaVariance is the variance of the pixels' luma (0 … 255).
func lumaVariance(img image.Image) float64 {
	var n, sum, sq float64
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			l := (0.299*float64(r) + 0.587*float64(g) + 0.114*float64(bl)) / 257
			n, sum, sq = n+1, sum+l, sq+l*l
		}
	}
	mean := sum / n
	return sq/n - mean*mean
}

// countNear counts the pixels within tol of c on every channel.
func countNear(img image.Image, c [3]uint8, tol int) int {
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if near(r>>8, c[0], tol) && near(g>>8, c[1], tol) && near(bl>>8, c[2], tol) {
				n++
			}
		}
	}
	return n
}

func near(v uint32, c uint8, tol int) bool {
	d := int(v) - int(c)
	return d >= -tol && d <= tol
}
