"""The aiohttp application: pages, the JSON API, waiting room, payments and the scan endpoint."""
