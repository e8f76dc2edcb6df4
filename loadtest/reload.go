package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/l1gw/l1gw/loadtest/internal/harness"
)

// reloadCount is how many reloads the reload scenario makes during its
// attack; reloadInvalid is the one that writes a file that does not load.
const (
	reloadCount   = 10
	reloadInvalid = 5
)

// reloadToken is the admin token of the reload scenario's gateway.
const reloadToken = "loadtest-reload"

// Reloads is what the reload scenario's reloads answered.
type Reloads struct {
	// Done is how many reloads were asked for; Codes counts the answers
	// of POST /v1/reload by status ("0": no answer).
	Done  int            `json:"done"`
	Codes map[string]int `json:"codes"`
}

// reloader rewrites the gateway's config file and asks it to reload,
// reloadCount times spread over an attack.
type reloader struct {
	path, upstream string
	sc             scenario
	gw             *harness.Gateway
}

// variant is the config of reload step i: the scenario's, plus a tenant
// and a limit of its own; step reloadInvalid is not YAML at all.
func (r *reloader) variant(i int) []byte {
	if i == reloadInvalid {
		return []byte("tenant_list: [unclosed\n")
	}
	c := scenarioConfig(r.sc, r.upstream)
	c.Tenants = append(c.Tenants, harness.GatewayTenant{ID: "t-extra-" + strconv.Itoa(i), Plan: planName, Keys: []string{"extra-" + strconv.Itoa(i)}})
	p := c.Plans[planName]
	p.Limits[0].Limit += int64(i)
	b, _ := json.MarshalIndent(c, "", "  ") // plain structs: cannot fail
	return b
}

// run makes the reloads over d, until ctx ends, and returns their answers.
func (r *reloader) run(ctx context.Context, d time.Duration) *Reloads {
	out := &Reloads{Codes: map[string]int{}}
	every := d / (reloadCount + 1)
	client := &http.Client{Timeout: 10 * time.Second}
	for i := 1; i <= reloadCount; i++ {
		select {
		case <-ctx.Done():
			return out
		case <-time.After(every):
		}
		out.Done++
		code := 0
		if err := os.WriteFile(r.path, r.variant(i), 0o600); err == nil {
			code = r.post(client)
		}
		out.Codes[strconv.Itoa(code)]++
	}
	return out
}

// post is POST /v1/reload; its status, 0 without an answer.
func (r *reloader) post(client *http.Client) int {
	req, err := http.NewRequest(http.MethodPost, "http://"+r.gw.Admin+"/v1/reload", nil)
	if err != nil {
		return 0
	}
	req.Header.Set("Authorization", "Bearer "+reloadToken)
	resp, err := client.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// during runs r's reloads beside attack, which lasts d.
func (r *reloader) during(ctx context.Context, d time.Duration, attack func() error) (*Reloads, error) {
	var wg sync.WaitGroup
	var got *Reloads
	wg.Add(1)
	go func() {
		defer wg.Done()
		got = r.run(ctx, d)
	}()
	err := attack()
	wg.Wait()
	return got, err
}

// reloadNote checks the reloads' answers: every one 200 but the invalid
// file's, which is 400.
func reloadNote(rl *Reloads) []string {
	want := map[string]int{"200": reloadCount - 1, "400": 1}
	if rl.Done != reloadCount || fmt.Sprint(rl.Codes) != fmt.Sprint(want) {
		return []string{fmt.Sprintf("reloads answered %v of %d asked; want %v", rl.Codes, rl.Done, want)}
	}
	return nil
}
