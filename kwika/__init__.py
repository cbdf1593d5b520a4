"""The composition root: the `kwika` command wires engine, storefront and fulfillment together."""
