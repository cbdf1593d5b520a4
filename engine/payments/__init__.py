"""Payment gateways behind one interface (base.py), one module per gateway."""
