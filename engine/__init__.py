"""The on-sale core: catalog, accounts, inventory state and the Postgres store.

`engine` knows no HTTP and no SMTP; `storefront` and `fulfillment` build on it.
"""
