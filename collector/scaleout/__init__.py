"""Several instances sharing one Redis (`state.backend = "redis"`), and the one-instance default.

- `leases.py`: the lease primitives (take / renew / release, atomic in Lua) everything else
  here is built on;
- `placement.py`: the `Placement` protocol the service hands its sources to, and
  `LocalPlacement`, which runs them all here;
- `balance.py` and `redis_placement.py`: where each source of the fleet should run, and
  `RedisPlacement`, which runs it there under a lease;
- `upload_lease.py`: one uploader at a time per upload target;
- `shared_limits.py`: one rate limit per credential, whichever instance sends the request;
- `open.py`: the placement the config asks for.
"""
