package limiter

import (
	"errors"

	"github.com/l1gw/l1gw/internal/credfile"
)

// secrets are the passwords read from files (redis.password_file,
// redis.sentinel_password_file): every connection dialed asks for the
// current one, so a rotated file needs no restart.
type secrets struct {
	password, sentinel *credfile.File // nil: the config's value
}

// openSecrets reads o's password files.
func openSecrets(o RedisOptions) (*secrets, error) {
	s := &secrets{}
	var err error
	if o.PasswordFile != "" {
		if s.password, err = credfile.Open("redis.password_file", o.PasswordFile); err != nil {
			return nil, err
		}
	}
	if o.SentinelPasswordFile != "" {
		if s.sentinel, err = credfile.Open("redis.sentinel_password_file", o.SentinelPasswordFile); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// password is the password of a new connection to a data node.
func (o RedisOptions) password() string {
	if o.secrets != nil && o.secrets.password != nil {
		return o.secrets.password.Value()
	}
	return o.Password
}

// sentinelPassword is the password of a new connection to a sentinel.
func (o RedisOptions) sentinelPassword() string {
	if o.secrets != nil && o.secrets.sentinel != nil {
		return o.secrets.sentinel.Value()
	}
	return o.SentinelPassword
}

// credentials is go-redis' provider of a data node's credentials when the
// password comes from a file; nil otherwise (Options.Password serves).
func (o RedisOptions) credentials() func() (string, string) {
	if o.secrets == nil || o.secrets.password == nil {
		return nil
	}
	return func() (string, string) { return o.Username, o.password() }
}

// ReloadSecrets reads the password files again; it returns the config
// keys of those that changed. A file that cannot be read keeps the
// password read before, and is an error.
func (c *Clients) ReloadSecrets() (changed []string, err error) {
	for _, f := range []*credfile.File{c.opts.secrets.password, c.opts.secrets.sentinel} {
		if f == nil {
			continue
		}
		ch, e := f.Check()
		if ch {
			changed = append(changed, f.Key)
		}
		err = errors.Join(err, e)
	}
	return changed, err
}
