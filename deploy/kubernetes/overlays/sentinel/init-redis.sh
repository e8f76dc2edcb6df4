#!/bin/sh
# Writes /conf/redis.conf for this pod: the shared settings, the
# passwords, the name it announces, and `replicaof` the current primary.
# The primary is the one the sentinels name; with none answering (the
# first start), pod 0 starts as the primary and the others replicate it.
set -eu
self="$POD_NAME.l1gw-redis"
cp /config/redis.conf /conf/redis.conf
{
  echo "requirepass $REDIS_PASSWORD"
  echo "masterauth $REDIS_PASSWORD"
  echo "replica-announce-ip $self"
} >>/conf/redis.conf
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
if [ -z "$primary" ] && [ "${POD_NAME##*-}" != 0 ]; then
  primary="l1gw-redis-0.l1gw-redis"
fi
if [ -n "$primary" ] && [ "$primary" != "$self" ]; then
  echo "replicaof $primary 6379" >>/conf/redis.conf
fi
