"""Load tests of the Shopkeep store: the minute a limited drop opens, and what the server held.

- :mod:`loadtests.locustfile`: Locust users that play through the SDK (browsing, buying, drop
  hunting, a studio backend granting coins) and the ``steady`` / ``peak_event`` load shapes.
- :mod:`loadtests.peak_event`: ``python -m loadtests.peak_event`` starts a private store, seeds
  it through the API, runs Locust headless (optionally through :mod:`loadtests.faultproxy`,
  which drops responses after the server committed), re-sends every call left without an
  answer with its idempotency key, then audits that nothing was lost or doubled.
- :mod:`loadtests.bench`: ``python -m loadtests.bench`` measures requests per second and
  latency per endpoint against one server, with a generator that is not the bottleneck.
- :mod:`loadtests.seed`: the seeding steps alone, for a real deployment and distributed Locust.

See the README's section on load tests.
"""
