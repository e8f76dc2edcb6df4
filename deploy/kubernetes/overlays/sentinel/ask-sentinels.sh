# ask-sentinels.sh, sourced by init-redis.sh and init-sentinel.sh: sets
# primary to the host the sentinels name as mymaster's primary, or "".
# SELF_SENTINEL, if set, is a sentinel not to ask (the caller itself).
# Ask each sentinel pod in turn (the Service name may resolve to a pod
# not yet up, or to this one), and take only a host name for an answer:
# with a wrong password redis-cli prints the error on stdout.
primary=""
for i in 0 1 2; do
  host="l1gw-sentinel-$i.l1gw-sentinel"
  [ "$host" = "${SELF_SENTINEL:-}" ] && continue
  answer=$(REDISCLI_AUTH="$SENTINEL_PASSWORD" timeout 2 redis-cli -h "$host" -p 26379 \
    sentinel get-master-addr-by-name mymaster 2>/dev/null | head -n 1 || true)
  case "$answer" in
  "" | *[!A-Za-z0-9.-]*) continue ;;
  esac
  primary=$answer
  break
done
