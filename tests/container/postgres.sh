#!/bin/sh
# What the official postgres image's entrypoint does with POSTGRES_USER, _PASSWORD and _DB, briefly.
set -eu
DATA=/var/lib/postgresql/data
BIN=/usr/lib/postgresql/15/bin
mkdir -p "$DATA" /run/postgresql
chown postgres:postgres "$DATA" /run/postgresql
chmod 0700 "$DATA"
if [ ! -e "$DATA/.stand-in-ready" ]; then  # a first start, or one cut short: start over
  rm -rf "${DATA:?}"/* "$DATA"/.[!.]*
  printf '%s\n' "$POSTGRES_PASSWORD" > /run/postgresql/pw
  chown postgres /run/postgresql/pw
  su postgres -s /bin/sh -c "$BIN/initdb -D $DATA -U $POSTGRES_USER --pwfile=/run/postgresql/pw --auth-local=trust --auth-host=scram-sha-256" >/dev/null
  rm /run/postgresql/pw
  echo "host all all 0.0.0.0/0 scram-sha-256" >> "$DATA/pg_hba.conf"
  su postgres -s /bin/sh -c "$BIN/pg_ctl -D $DATA -w -o '-c listen_addresses=' start" >/dev/null
  su postgres -s /bin/sh -c "$BIN/psql -q -h /run/postgresql -p 5432 -U $POSTGRES_USER -d postgres -c 'CREATE DATABASE \"$POSTGRES_DB\"'"
  su postgres -s /bin/sh -c "$BIN/pg_ctl -D $DATA -w stop" >/dev/null
  touch "$DATA/.stand-in-ready"
fi
exec su postgres -s /bin/sh -c "exec $BIN/postgres -D $DATA -c listen_addresses='*'"
