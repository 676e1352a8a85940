#!/bin/bash
# Makes the NSS database of the nssdb C test with certutil, as PCP's guide
# does: a password-protected sql: database with a self-signed CA and two
# collector certificates for localhost (RSA "PCP Collector certificate",
# ECDSA P-256 "EC Collector"), the password in a mode 0400 file, and the
# CA exported as PEM.
#
#   gennssdb.sh DIR   ->  DIR/db (sql:), DIR/password, DIR/ca.crt
set -euo pipefail
dir=$1
mkdir -p "$dir/db"
printf 'c-test password\n' >"$dir/password"
chmod 0400 "$dir/password"
head -c 64 /dev/urandom >"$dir/noise"
db="sql:$dir/db"
pw=(-f "$dir/password")
certutil -N -d "$db" "${pw[@]}"
certutil -S -x -d "$db" "${pw[@]}" -z "$dir/noise" -m 1 -v 12 -t "CT,," \
    -n "Local CA certificate" -s "cn=Local PCP Installation,dc=example" >/dev/null
certutil -S -d "$db" "${pw[@]}" -z "$dir/noise" -m 2 -v 12 -t "P,," -c "Local CA certificate" \
    -n "PCP Collector certificate" -s "cn=PCP Collector" -8 localhost >/dev/null
certutil -S -d "$db" "${pw[@]}" -z "$dir/noise" -m 3 -v 12 -t ",," -c "Local CA certificate" \
    -k ec -q secp256r1 -n "EC Collector" -s "cn=EC Collector" -8 localhost >/dev/null
certutil -L -d "$db" -n "Local CA certificate" -a >"$dir/ca.crt"
rm -f "$dir/noise"
