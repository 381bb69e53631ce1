"""The limiter's pure parts: quota arithmetic, shared state and statistics, with no I/O.

The waiting halves (``greycloud._async.rate_limiter`` and its generated sync twin) and the stores
(in memory, or Redis) build on these modules; nothing here sleeps, awaits or reads a real clock.
"""
