async def test_healthz(client):
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert (await resp.json())["status"] == "ok"


async def test_readyz_checks_both_stores(client):
    resp = await client.get("/readyz")
    body = await resp.json()
    assert resp.status == 200, body
    # (and the waiting room's admission tick, which every storefront process runs)
    assert body["checks"] == {"redis": "ok", "postgres": "ok", "room": "ok"}
