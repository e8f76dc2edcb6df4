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
. /config/ask-sentinels.sh # sets primary: what the sentinels name, or ""
if [ -z "$primary" ] && [ "${POD_NAME##*-}" != 0 ]; then
  primary="l1gw-redis-0.l1gw-redis"
fi
if [ -n "$primary" ] && [ "$primary" != "$self" ]; then
  echo "replicaof $primary 6379" >>/conf/redis.conf
fi
