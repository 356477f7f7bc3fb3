"""The simulated city: riders and drivers using the public API as the apps do.

    python -m deploy.sim --gateway http://127.0.0.1:8080 [--drivers 15] [--riders 25]
                         [--pace 4] [--duration 0] [--seed N]

Every rider and driver is a client of the gateway and nothing else: drivers
sign up, log in, go online, drive along the streets of the demo region while
reporting their location, long-poll offers, accept most of them, drive to the
pickup, arrive, start, drive to the dropoff and complete; riders look at the
cars nearby, ask for estimates, request trips with an Idempotency-Key, follow
them over server-sent events, sometimes cancel, and rate the completed ones.
The trip vocabulary (event types, statuses, transitions, products) comes from
the gateway's GET /v1/vocabulary, so the city carries no copy of it.

Settings (a command-line option wins over its environment variable):

    CITY_GATEWAY      --gateway    gateway base URL (http://127.0.0.1:8080)
    CITY_DRIVERS      --drivers    number of drivers (15)
    CITY_RIDERS       --riders     number of riders (20)
    CITY_PACE         --pace       how much faster than real life the city runs (10):
                                   cars drive at 40 km/h x pace, riders think 1/pace as long
    CITY_DURATION_S   --duration   stop after this many seconds; 0 runs until SIGINT/SIGTERM (0)
    CITY_SEED         --seed       random seed, for a repeatable run (none)
    CITY_REGION       --region     home region of the city's users (sf)
    CITY_LOCATION_EVERY_S          seconds between a driver's location updates (2)
    CITY_LOG_EVERY_S               seconds between summary lines (15)
    CITY_RUN_ID                    user-name prefix; unset makes a new one per run, so
                                   restarts never collide (a name taken logs in instead)
    CITY_SECRET                    seed of the demo accounts' passwords (demo-city)

It never calls anything but the public API. It retries with backoff on 429,
502, 503, 504 and connection errors (common.retry), treats any other
unexpected answer as "log it, wait, carry on", and logs one summary line
every CITY_LOG_EVERY_S.

One concern per module:

    geometry.py    points: distance, heading, inside a polygon, JSON form
    streets.py     the street graph of a region and routes on it
    vehicle.py     a car moving along a route
    config.py      the settings (options and environment)
    client.py      the HTTP and server-sent events client, and the run's counters
    vocabulary.py  the trip vocabulary, read from the gateway
    person.py      what every app user does: account, session, a life that restarts
    driver.py      a driver's shift
    rider.py       a rider's trips
    city.py        the population, its summary line, start and stop; main()
"""
