#!/bin/sh
# Writes /conf/sentinel.conf for this pod: the primary to monitor is the
# one the other sentinels name, else pod 0 of l1gw-redis (the first start).
set -eu
cp /config/sentinel.conf /conf/sentinel.conf
SELF_SENTINEL="$POD_NAME.l1gw-sentinel"
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
[ -n "$primary" ] || primary="l1gw-redis-0.l1gw-redis"
{
  echo "sentinel announce-ip $POD_NAME.l1gw-sentinel"
  echo "requirepass $SENTINEL_PASSWORD"
  echo "sentinel sentinel-pass $SENTINEL_PASSWORD"
  echo "sentinel monitor mymaster $primary 6379 2"
  echo "sentinel auth-pass mymaster $REDIS_PASSWORD"
  # How long a dead primary is tried before a failover; l1gw's
  # decisions degrade meanwhile (README: 1000-5000).
  echo "sentinel down-after-milliseconds mymaster 5000"
  echo "sentinel failover-timeout mymaster 60000"
  echo "sentinel parallel-syncs mymaster 1"
} >>/conf/sentinel.conf
