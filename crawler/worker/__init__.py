"""Scale-out: audits run by Dramatiq workers over Redis (docs/scaling.md).

- ``broker``: the Redis broker from ``[worker]`` (password from the environment).
- ``actor``: the one actor, ``audit_site(site_id, period)``, declared on a broker.
- ``job``: what the actor does: the site's lock, one audit in a child process, the emails.
- ``enqueue``: ``sitewatch schedule`` with ``schedule.backend = "dramatiq"``: one message
  per site and period (``Store.claim_period``), one scheduler (a lock in the history).
- ``run``: ``sitewatch worker``: Dramatiq worker processes.

Nothing here is imported by ``sitewatch audit``.
"""
