"""The virtual waiting room of timed releases (Redis + scripts/lua/room_*.lua).

    tokens.py  the signed join challenge (proof of work) and the signed pass: pure functions
    queue.py   WaitingRoom: configure, join, status, tick (admission), passes checked and used
    store.py   the provider's settings, kept in Postgres (`waiting_rooms`, migration 0008)

How it works, in one paragraph: a visitor who opens an event whose room is on solves a small
proof of work and joins a sorted set with one place per buyer identity. Before the release the
place's score is a random number drawn by the server, below every later score, so the pre-queue
is in random order at release; after it, scores count up (first come, first served). A tick
(any storefront process, and every position read) pops visitors from the head at the set rate,
never more than the stock left minus the passes still out, and gives each a short-lived pass.
The hold, best-available and checkout routes refuse a caller without a valid pass; a pass makes
one basket.
"""

from engine.room.queue import JoinResult, RoomFigures, WaitingRoom
from engine.room.store import RoomSettings, RoomStore

__all__ = ["JoinResult", "RoomFigures", "RoomSettings", "RoomStore", "WaitingRoom"]
