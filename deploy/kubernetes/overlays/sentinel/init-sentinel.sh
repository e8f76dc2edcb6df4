#!/bin/sh
# Writes /conf/sentinel.conf for this pod: the primary to monitor is the
# one the other sentinels name, else pod 0 of l1gw-redis (the first start).
set -eu
cp /config/sentinel.conf /conf/sentinel.conf
SELF_SENTINEL="$POD_NAME.l1gw-sentinel"
. /config/ask-sentinels.sh # sets primary: what the sentinels name, or ""
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
