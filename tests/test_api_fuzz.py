"""Schemathesis fuzzes every operation of /api/openapi.json against the app on a real port:
no answer is a 5xx, and every answer is one the description documents (status, content type,
body schema). Each operation runs schemathesis' coverage phase (boundary and invalid values) and
a bounded number of generated examples, authenticated with the role the route needs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import msgspec
import pytest
import requests
import schemathesis

from engine.embedded import Services
from storefront import openapi
from storefront.app import all_routes
from storefront.appkeys import ACCOUNTS
from tests.conftest import clean_up, fresh_settings
from tests.factories import Actor, Factory
from tests.live_app import LiveApp

MAX_EXAMPLES = 25  # generated examples per operation, after the coverage phase
# Not among them: positive_data_acceptance (schema-valid input may still break a rule, e.g. an
# end before the start, or name an id that does not exist) and ignored_auth (the test sends its
# own valid token with every request).
CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_headers_conformance,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.negative_data_rejection,
]

# the description is built from the route registry, as /api/openapi.json serves it
DESCRIPTION = msgspec.json.decode(msgspec.json.encode(openapi.build(all_routes())))
schema = schemathesis.openapi.from_dict(msgspec.json.decode(msgspec.json.encode(DESCRIPTION)))
schema.config.generation.update(max_examples=MAX_EXAMPLES)


class World:
    """The running app and the actors the fuzz acts as."""

    def __init__(self, live: LiveApp):
        self.live = live
        factory = Factory(live.client)
        self.provider: Actor = live.run(factory.user("provider"))
        self.buyer: Actor = live.run(factory.user("buyer"))
        self.admin: Actor = live.run(factory.user("admin"))
        self.token_owner: Actor = live.run(factory.user("buyer"))  # whose tokens get revoked
        live.run(factory.published_event(self.provider, packages=2))
        seated = live.run(factory.event(self.provider, requires_seating=True))
        package = live.run(factory.package(self.provider, seated["id"]))
        live.run(factory.section(self.provider, seated["id"], package["id"],
                                 row_price_modifiers={"A": 100_000}))
        published = live.run(live.client.post(f"/api/provider/events/{seated['id']}/publish",
                                              headers=self.provider.h))
        assert published.status == 200

    def headers_for(self, path: str) -> dict[str, str]:
        if path.startswith("/api/provider/"):
            return self.provider.h
        if path.startswith("/api/admin/"):
            return self.admin.h
        if path.startswith("/api/auth/tokens"):
            return self.token_owner.h
        return self.buyer.h

    def restore(self) -> None:
        """Undo what one operation's fuzz may have done to the actors the next one needs."""
        accounts = self.live.client.server.app[ACCOUNTS]
        self.live.run(accounts.set_provider_status(self.provider.user["provider_id"], "verified"))


@pytest.fixture(scope="module")
async def live_app(services: Services, database_url: str, tables: list[str]) -> AsyncIterator[LiveApp]:
    settings = fresh_settings(services, database_url)
    live = LiveApp(settings)
    try:
        yield live
    finally:
        live.close()
        await clean_up(settings, tables)


@pytest.fixture(scope="module")
def world(live_app: LiveApp) -> World:
    return World(live_app)


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


@pytest.fixture(autouse=True)
def _restored(world: World) -> None:
    world.restore()


def test_the_fuzzed_description_is_the_one_served(live_app: LiveApp) -> None:
    served = requests.get(f"{live_app.base_url}/api/openapi.json", timeout=10).json()
    assert served == DESCRIPTION


@schema.parametrize()
def test_every_operation_answers_as_documented_and_never_5xx(case, world: World,
                                                              session: requests.Session) -> None:
    case.call_and_validate(base_url=world.live.base_url, session=session,
                           headers=world.headers_for(case.operation.path), checks=CHECKS)
