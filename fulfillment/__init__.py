"""Stream consumers: the Postgres writer, ticket issuing, PDF rendering and email.

Talks to `storefront` only through Redis streams and the Postgres rows `engine` owns.
"""
