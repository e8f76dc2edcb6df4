package timeline

import (
	"bytes"
	"fmt"
	"html/template"
	"io"
	"os"
)

// Page is a runner's HTML report: a title, lines of context (the
// machine, the command), and the plots of each timeline.
type Page struct {
	// Title heads the page and names it.
	Title string
	// Lines are printed under the title, one a line, as they are.
	Lines []string
	// Timelines are plotted in order, three charts each.
	Timelines []Timeline
}

// section is one timeline's heading and plots, as the template sees it.
type section struct {
	Name    string
	Windows []Window
	Charts  []*chart
}

// WriteHTML writes the page: self-contained, no script, nothing fetched.
func (p Page) WriteHTML(w io.Writer) error {
	data := struct {
		Title    string
		Lines    []string
		Sections []section
	}{Title: p.Title, Lines: p.Lines}
	for i := range p.Timelines {
		tl := &p.Timelines[i]
		data.Sections = append(data.Sections, section{Name: tl.Name, Windows: tl.Windows, Charts: charts(tl)})
	}
	return pageTemplate.Execute(w, data)
}

// WriteFile writes the page to path.
func (p Page) WriteFile(path string) error {
	var b bytes.Buffer
	if err := p.WriteHTML(&b); err != nil {
		return fmt.Errorf("render %s: %w", path, err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

var pageTemplate = template.Must(template.New("page").Funcs(template.FuncMap{
	"px":  formatPx,
	"add": func(a, b float64) float64 { return a + b },
	"sub": func(a, b float64) float64 { return a - b },
	"mid": func(a, b float64) float64 { return (a + b) / 2 },
}).Parse(pageHTML))

const pageHTML = `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{{.Title}}</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 16px 32px; color: #222; background: #fff; max-width: 1216px; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 28px; border-top: 1px solid #ccc; padding-top: 12px; }
p.meta { margin: 2px 0; color: #555; font-family: ui-monospace, monospace; font-size: 12px; }
svg { display: block; margin: 6px 0 10px; }
svg text { font: 12px system-ui, sans-serif; fill: #333; }
svg .title { font-size: 14px; font-weight: 600; }
svg .grid { stroke: #e4e4e4; } svg .axis { stroke: #444; }
svg .fault { fill: #ff9900; fill-opacity: 0.18; stroke: #ff9900; stroke-opacity: 0.5; }
svg .series { fill: none; stroke-width: 2; stroke-linejoin: round; stroke-linecap: round; }
</style></head>
<body>
<h1>{{.Title}}</h1>
{{range .Lines}}<p class="meta">{{.}}</p>
{{end}}
{{range .Sections}}<section>
<h2>{{.Name}}</h2>
{{if .Windows}}<p>Fault windows (shaded): {{range $i, $w := .Windows}}{{if $i}}; {{end}}{{$w.Name}} {{$w.From}}–{{$w.To}} s{{end}}</p>
{{end}}{{range .Charts}}{{template "chart" .}}{{end}}
</section>
{{end}}
</body></html>
{{define "chart"}}<svg xmlns="http://www.w3.org/2000/svg" width="{{.W}}" height="{{.H}}" viewBox="0 0 {{.W}} {{.H}}" role="img" aria-label="{{.Title}}">
<text class="title" x="{{px .Left}}" y="16">{{.Title}}</text>
{{range .Bands}}<rect class="fault" x="{{px .X}}" y="{{px $.Top}}" width="{{px .W}}" height="{{px (sub $.Bot $.Top)}}"><title>{{.Name}}</title></rect>
{{if $.BandLabels}}<text x="{{px (add .X 3)}}" y="{{px (add $.Top 13)}}">{{.Name}}</text>
{{end}}{{end}}{{range .YTicks}}<line class="grid" x1="{{px $.Left}}" x2="{{px $.Right}}" y1="{{px .Pos}}" y2="{{px .Pos}}"/>
<text x="{{px (add $.Left -6)}}" y="{{px (add .Pos 4)}}" text-anchor="end">{{.Label}}</text>
{{end}}{{range .XTicks}}<line class="axis" x1="{{px .Pos}}" x2="{{px .Pos}}" y1="{{px $.Bot}}" y2="{{px (add $.Bot 5)}}"/>
<text x="{{px .Pos}}" y="{{px (add $.Bot 19)}}" text-anchor="middle">{{.Label}}</text>
{{end}}<line class="axis" x1="{{px .Left}}" x2="{{px .Right}}" y1="{{px .Bot}}" y2="{{px .Bot}}"/>
<line class="axis" x1="{{px .Left}}" x2="{{px .Left}}" y1="{{px .Top}}" y2="{{px .Bot}}"/>
<text x="{{px (mid .Left .Right)}}" y="{{px (add .Bot 40)}}" text-anchor="middle">{{.XLabel}}</text>
<text transform="translate(18 {{px (mid .Top .Bot)}}) rotate(-90)" text-anchor="middle">{{.YLabel}}</text>
{{range .Lines}}<path class="series" data-series="{{.Name}}" stroke="{{.Color}}" d="{{.D}}"/>
{{end}}{{range .Legend}}{{if .Band}}<rect class="fault" x="{{px .X}}" y="27" width="24" height="12"/>{{else}}<line stroke="{{.Color}}" stroke-width="3" x1="{{px .X}}" x2="{{px (add .X 24)}}" y1="33" y2="33"/>{{end}}
<text x="{{px (add .X 30)}}" y="37">{{.Name}}</text>
{{end}}</svg>
{{end}}`
