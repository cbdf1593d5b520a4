"""Check-in at the gate: the scan (`desk`: signature first, then one Lua script per scan), who
may scan which event (`access`, `staff`), and what an offline gate carries (`offline`).

The scan path touches Redis only; check-ins reach Postgres through each event's check-in stream
(`Keys.event(event_id, "checkins")`), written by fulfillment/checkins.py.
"""
