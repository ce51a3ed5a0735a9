#!/bin/sh
# Run once by the postgres image, on an empty volume: a role and a database for each service,
# each owning its own (the services share no tables); neither role may connect to the other's.
# The passwords come from compose.yaml (USER_SVC_DB_PASSWORD, ORDER_SVC_DB_PASSWORD).
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v user_pw="$USER_SVC_DB_PASSWORD" -v order_pw="$ORDER_SVC_DB_PASSWORD" <<'SQL'
CREATE ROLE user_svc LOGIN PASSWORD :'user_pw';
CREATE ROLE order_svc LOGIN PASSWORD :'order_pw';
CREATE DATABASE user_svc OWNER user_svc;
CREATE DATABASE order_svc OWNER order_svc;
REVOKE ALL ON DATABASE user_svc FROM PUBLIC;
REVOKE ALL ON DATABASE order_svc FROM PUBLIC;
SQL
