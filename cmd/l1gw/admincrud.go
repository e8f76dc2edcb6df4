package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"time"
)

// registryCmd is `l1gw admin tenants|plans …`: list, get, put and delete
// on the registry's tenants or plans.
func registryCmd(call adminCall, kind string, args []string) int {
	usage := func() int {
		fmt.Fprintf(call.stderr, "usage: l1gw admin %s list [--cursor C] [--limit N] | get NAME | put NAME FILE|- | delete NAME\n", kind)
		return 2
	}
	if len(args) == 0 {
		return usage()
	}
	base := "/v1/" + kind
	switch sub, rest := args[0], args[1:]; {
	case sub == "list":
		fs := flag.NewFlagSet(kind+" list", flag.ContinueOnError)
		fs.SetOutput(call.stderr)
		cursor := fs.String("cursor", "", "the next_cursor of the previous page")
		limit := fs.Int("limit", 100, "entries per page, 1 to 1000")
		if err := fs.Parse(rest); err != nil || fs.NArg() > 0 {
			return usage()
		}
		q := url.Values{"limit": {strconv.Itoa(*limit)}}
		if *cursor != "" {
			q.Set("cursor", *cursor)
		}
		return call.do("GET", base+"?"+q.Encode(), nil)
	case sub == "get" && len(rest) == 1:
		return call.do("GET", base+"/"+url.PathEscape(rest[0]), nil)
	case sub == "delete" && len(rest) == 1:
		return call.do("DELETE", base+"/"+url.PathEscape(rest[0]), nil)
	case sub == "put" && len(rest) == 2:
		body, err := readBody(call.stdin, rest[1])
		if err != nil {
			fmt.Fprintf(call.stderr, "l1gw admin %s put: %v\n", kind, err)
			return 2
		}
		return call.do("PUT", base+"/"+url.PathEscape(rest[0]), body)
	default:
		return usage()
	}
}

// readBody reads a JSON body from a file, or from in for "-".
func readBody(in io.Reader, name string) ([]byte, error) {
	var b []byte
	var err error
	if name == "-" {
		b, err = io.ReadAll(io.LimitReader(in, 1<<20))
	} else {
		b, err = os.ReadFile(name)
	}
	if err != nil {
		return nil, err
	}
	if !json.Valid(b) {
		return nil, fmt.Errorf("%s is not JSON", name)
	}
	return b, nil
}

// keysCmd is `l1gw admin keys …`.
func keysCmd(call adminCall, args []string) int {
	usage := func() int {
		fmt.Fprint(call.stderr, `usage: l1gw admin keys list TENANT
       l1gw admin keys issue TENANT [--expires-at RFC3339]
       l1gw admin keys rotate TENANT KEY_ID --old-expires-at RFC3339
       l1gw admin keys revoke TENANT KEY_ID
`)
		return 2
	}
	if len(args) < 2 {
		return usage()
	}
	sub, tenant, rest := args[0], args[1], args[2:]
	path := "/v1/tenants/" + url.PathEscape(tenant) + "/keys"
	fs := flag.NewFlagSet("keys "+sub, flag.ContinueOnError)
	fs.SetOutput(call.stderr)
	var in struct {
		ExpiresAt  string `json:"expires_at,omitempty"`
		RotateFrom string `json:"rotate_from,omitempty"`
	}
	switch sub {
	case "list":
		if len(rest) > 0 {
			return usage()
		}
		return call.do("GET", path, nil)
	case "revoke":
		if len(rest) != 1 {
			return usage()
		}
		return call.do("DELETE", path+"/"+url.PathEscape(rest[0]), nil)
	case "issue":
		fs.StringVar(&in.ExpiresAt, "expires-at", "", "when the key stops working (RFC 3339); default never")
	case "rotate":
		if len(rest) == 0 {
			return usage()
		}
		in.RotateFrom, rest = rest[0], rest[1:]
		fs.StringVar(&in.ExpiresAt, "old-expires-at", "", "when the rotated key stops working (RFC 3339); required")
	default:
		return usage()
	}
	if err := fs.Parse(rest); err != nil || fs.NArg() > 0 {
		return usage()
	}
	if in.ExpiresAt != "" {
		if _, err := time.Parse(time.RFC3339, in.ExpiresAt); err != nil {
			fmt.Fprintf(call.stderr, "l1gw admin keys %s: %q is not an RFC 3339 time (2030-01-02T15:04:05Z)\n", sub, in.ExpiresAt)
			return 2
		}
	}
	body, _ := json.Marshal(in) // strings: cannot fail
	return call.do("POST", path, body)
}
