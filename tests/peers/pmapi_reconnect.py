#!/usr/bin/python3
"""pmapi_reconnect.py HOST COUNT [METRIC]

From this one process, COUNT times: open a PCP context to HOST with
python's PMAPI (pcp.pmapi, i.e. libpcp), look up METRIC (default
kernel.all.load), fetch it, and destroy the context again, as monitoring
tools that reconnect do. Prints one line per connection and a closing
"N of COUNT connections succeeded"; exits 0 only when all of them did.

TLS is whatever the environment says (PCP_SECURE_SOCKETS, PCP_TLSCONF_PATH,
LD_PRELOAD of libpcp_secure).
"""

import sys

import cpmapi as c_api
from pcp import pmapi


def main():
    if len(sys.argv) not in (3, 4):
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    host, count = sys.argv[1], int(sys.argv[2])
    metric = sys.argv[3] if len(sys.argv) == 4 else "kernel.all.load"
    ok = 0
    for i in range(1, count + 1):
        ctx = None
        try:
            ctx = pmapi.pmContext(c_api.PM_CONTEXT_HOST, host)
            pmids = ctx.pmLookupName([metric])
            result = ctx.pmFetch(pmids)
            values = result.contents.get_numval(0)
            pmapi.pmContext.pmFreeResult(result)
            if values <= 0:
                raise RuntimeError(f"{metric}: no values ({values})")
            print(f"connection {i}: ok, {values} values of {metric}", flush=True)
            ok += 1
        except (pmapi.pmErr, RuntimeError) as e:
            print(f"connection {i}: FAILED: {e}", flush=True)
        finally:
            # Drops the last reference: pmContext.__del__ destroys the
            # context, which closes the connection (and its TLS session).
            del ctx
    print(f"{ok} of {count} connections succeeded", flush=True)
    return 0 if ok == count else 1


if __name__ == "__main__":
    sys.exit(main())
