package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/l1gw/l1gw/loadtest/internal/harness"
)

// uploadBytes is the upload scenario's body: 1 GiB.
const uploadBytes = 1 << 30

// Upload is the upload scenario's measurement: one body of uploadBytes
// through the gateway to the upstream, which reads and drops it.
type Upload struct {
	// Bytes were sent; Received is what the upstream read (its answer).
	Bytes    int64  `json:"bytes"`
	Received string `json:"received"`
	// Status is the gateway's answer.
	Status int `json:"status"`
	// Seconds the upload took, and MBps its rate.
	Seconds float64 `json:"seconds"`
	MBps    float64 `json:"mb_per_s"`
	// PeakRSSGrowthKB is the most VmRSS grew above its start, sampled
	// every 50 ms through the upload.
	PeakRSSGrowthKB int64 `json:"peak_rss_growth_kb"`
}

// zeros reads as endless zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// rssPeak samples pid's VmRSS every 50 ms until stop is called, which
// returns the most it grew above base.
func rssPeak(pid int, base int64) (stop func() int64) {
	peak := make(chan int64, 1)
	done := make(chan struct{})
	go func() {
		var max int64
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				peak <- max
				return
			case <-t.C:
				if s, err := harness.SampleProc(pid); err == nil && s.RSSKB-base > max {
					max = s.RSSKB - base
				}
			}
		}
	}()
	return func() int64 { close(done); return <-peak }
}

// download reads GET /download (1 GiB) through the gateway and drops it,
// sampling the gateway's RSS meanwhile.
func download(ctx context.Context, gw *harness.Gateway) (*Upload, error) {
	url, err := loopbackURL(gw.Proxy)
	if err != nil {
		return nil, err
	}
	before, err := harness.SampleProc(gw.Pid())
	if err != nil {
		return nil, err
	}
	stop := rssPeak(gw.Pid(), before.RSSKB)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(url, attackPath)+"/download", nil)
	req.Header.Set("X-Api-Key", tenantKey(0))
	client := &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{Proxy: nil, DisableCompression: true}}
	start := time.Now()
	resp, err := client.Do(req)
	var n int64
	if err == nil {
		n, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	secs := time.Since(start).Seconds()
	max := stop()
	if err != nil {
		return nil, fmt.Errorf("download: %w", err)
	}
	return &Upload{Bytes: n, Received: fmt.Sprintf("%d bytes read", n), Status: resp.StatusCode, Seconds: secs,
		MBps: float64(n) / secs / 1e6, PeakRSSGrowthKB: max}, nil
}

// upload sends one uploadBytes POST through the gateway with the first
// tenant's key, sampling the gateway's RSS meanwhile.
func upload(ctx context.Context, gw *harness.Gateway) (*Upload, error) {
	if err := harness.CheckLoopback(gw.Proxy); err != nil {
		return nil, err
	}
	before, err := harness.SampleProc(gw.Pid())
	if err != nil {
		return nil, err
	}
	stop := rssPeak(gw.Pid(), before.RSSKB)
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", gw.Proxy)
	if err != nil {
		stop()
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	start := time.Now()
	head := fmt.Sprintf("POST /upload HTTP/1.1\r\nHost: l1gw\r\nX-Api-Key: %s\r\nContent-Length: %d\r\n\r\n", tenantKey(0), uploadBytes)
	_, err = io.WriteString(c, head)
	if err == nil {
		_, err = io.CopyN(c, zeros{}, uploadBytes)
	}
	var resp *http.Response
	if err == nil {
		resp, err = http.ReadResponse(bufio.NewReader(c), nil)
	}
	secs := time.Since(start).Seconds()
	max := stop()
	if err != nil {
		return nil, fmt.Errorf("upload: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64))
	return &Upload{Bytes: uploadBytes, Received: string(body), Status: resp.StatusCode, Seconds: secs,
		MBps: uploadBytes / secs / 1e6, PeakRSSGrowthKB: max}, nil
}
