module github.com/l1gw/l1gw

go 1.26.8

require github.com/VictoriaMetrics/metrics v1.35.1

require (
	github.com/valyala/fastrand v1.1.0 // indirect
	github.com/valyala/histogram v1.2.0 // indirect
	golang.org/x/sys v0.48.0 // indirect
)
