package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// adminUsage is the help of `l1gw admin`.
const adminUsage = `usage: l1gw admin [--addr HOST:PORT] COMMAND [ARGS]

Calls the admin API of a running gateway. The token is read from
L1GW_SERVER__ADMIN_TOKEN (the variable the gateway reads its own from),
never from a flag; --addr defaults to L1GW_SERVER__ADMIN_LISTEN, else
127.0.0.1:9090.

  reload                                  re-read the gateway's config now
  simulate (--key K|- | --tenant T) --method M --path P [--client-ip IP]
                                          decide a request, recording nothing
  usage TENANT                            each rule's use
  reset TENANT                            forget what the tenant used
  config                                  the config in force, secrets redacted

The registry (tenants.source redis or both); bodies are JSON, from a
file or - for stdin:
  tenants list [--cursor C] [--limit N]   a page of tenants, in id order
  tenants get|delete ID
  tenants put ID FILE|-                   create or replace a tenant
  plans list|get|put|delete …             the same for plans
  keys list TENANT                        key ids, created, expires, last used
  keys issue TENANT [--expires-at T]      a new key, printed this once
  keys rotate TENANT KEY_ID --old-expires-at T
                                          a new key; the old one works until T
  keys revoke TENANT KEY_ID
`

// adminStdin is where `simulate --key -` reads the key (a test sets it).
var adminStdin io.Reader = os.Stdin

// adminCallTimeout bounds one admin call.
const adminCallTimeout = 10 * time.Second

// adminCmd runs `l1gw admin …`: 0 on a 2xx answer, 1 on another answer or
// no answer, 2 on bad usage.
func adminCmd(args, environ []string, stdout, stderr io.Writer) int {
	env := func(name string) string {
		for _, kv := range environ {
			if v, ok := strings.CutPrefix(kv, name+"="); ok {
				return v
			}
		}
		return ""
	}
	fs := flag.NewFlagSet("admin", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, adminUsage) }
	addr := fs.String("addr", orDefault(env("L1GW_SERVER__ADMIN_LISTEN"), "127.0.0.1:9090"), "the admin listener")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fmt.Fprint(stderr, adminUsage)
		return 2
	}
	call := adminCall{addr: dialable(*addr), token: env("L1GW_SERVER__ADMIN_TOKEN"), stdin: adminStdin, stdout: stdout, stderr: stderr}
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	switch cmd {
	case "reload", "config":
		if len(rest) > 0 {
			fmt.Fprintf(stderr, "l1gw admin %s: takes no argument\n", cmd)
			return 2
		}
		if cmd == "reload" {
			return call.do("POST", "/v1/reload", nil)
		}
		return call.do("GET", "/v1/config", nil)
	case "usage", "reset":
		if len(rest) != 1 {
			fmt.Fprintf(stderr, "usage: l1gw admin %s TENANT\n", cmd)
			return 2
		}
		path := "/v1/tenants/" + url.PathEscape(rest[0])
		if cmd == "usage" {
			return call.do("GET", path+"/usage", nil)
		}
		return call.do("POST", path+"/reset", nil)
	case "simulate":
		return simulateCmd(call, rest)
	case "tenants", "plans":
		return registryCmd(call, cmd, rest)
	case "keys":
		return keysCmd(call, rest)
	default:
		fmt.Fprintf(stderr, "l1gw admin: unknown command %q\n%s", cmd, adminUsage)
		return 2
	}
}

// simulateCmd is `l1gw admin simulate`.
func simulateCmd(call adminCall, args []string) int {
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	fs.SetOutput(call.stderr)
	var req struct {
		Key      string `json:"key,omitempty"`
		Tenant   string `json:"tenant,omitempty"`
		ClientIP string `json:"client_ip,omitempty"`
		Method   string `json:"method"`
		Path     string `json:"path"`
	}
	fs.StringVar(&req.Key, "key", "", `the request's API key; "-" reads it from stdin, so that it stays out of ps and shell history`)
	fs.StringVar(&req.Tenant, "tenant", "", "or its tenant's id")
	fs.StringVar(&req.Method, "method", "GET", "the request's method")
	fs.StringVar(&req.Path, "path", "/", "the request's path")
	fs.StringVar(&req.ClientIP, "client-ip", "", "an anonymous caller's address")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(call.stderr, "l1gw admin simulate: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if req.Key == "-" {
		line, err := bufio.NewReader(call.stdin).ReadString('\n')
		if err != nil && line == "" {
			fmt.Fprintln(call.stderr, "l1gw admin simulate: --key -: no key on stdin")
			return 2
		}
		req.Key = strings.TrimRight(line, "\r\n")
	}
	body, _ := json.Marshal(req) // strings: cannot fail
	return call.do("POST", "/v1/simulate", body)
}

// adminCall is one admin API call's settings.
type adminCall struct {
	addr, token    string
	stdin          io.Reader
	stdout, stderr io.Writer
}

// do sends the call and prints the answer: a JSON body indented on stdout,
// a problem's detail (or any other failure) on stderr.
func (c adminCall) do(method, path string, body []byte) int {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + c.addr + path)
	req.Header.SetMethod(method)
	if c.token != "" {
		req.Header.Set(fasthttp.HeaderAuthorization, "Bearer "+c.token)
	}
	if body != nil {
		req.Header.SetContentType("application/json")
		req.SetBody(body)
	}
	if err := fasthttp.DoTimeout(req, resp, adminCallTimeout); err != nil {
		fmt.Fprintf(c.stderr, "l1gw admin: %s %s: %v\n", method, c.addr, err)
		return 1
	}
	code := resp.StatusCode()
	if code/100 != 2 {
		var p struct {
			Title  string `json:"title"`
			Detail string `json:"detail"`
		}
		if json.Unmarshal(resp.Body(), &p) == nil && p.Detail != "" {
			fmt.Fprintf(c.stderr, "l1gw admin: %d %s: %s\n", code, p.Title, p.Detail)
		} else {
			fmt.Fprintf(c.stderr, "l1gw admin: %d %s\n", code, bytes.TrimSpace(resp.Body()))
		}
		if code == fasthttp.StatusForbidden || code == fasthttp.StatusUnauthorized {
			fmt.Fprintln(c.stderr, "l1gw admin: set L1GW_SERVER__ADMIN_TOKEN to the gateway's server.admin_token")
		}
		return 1
	}
	var out bytes.Buffer
	if json.Indent(&out, resp.Body(), "", "  ") == nil {
		out.WriteByte('\n')
		c.stdout.Write(out.Bytes())
	} else if len(resp.Body()) > 0 {
		c.stdout.Write(resp.Body())
	}
	return 0
}

// dialable turns a listen address into one to dial: a listener on every
// address (":9090", "0.0.0.0:9090", "[::]:9090") is reached on loopback.
func dialable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		return net.JoinHostPort("127.0.0.1", port)
	}
	return addr
}

// orDefault is a, or b when a is empty.
func orDefault(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
