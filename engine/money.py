"""Money as people read it. Amounts are integers in minor units everywhere else."""

from __future__ import annotations

# ISO 4217 minor-unit exponents that are not 2
_EXPONENT = {"JPY": 0, "KRW": 0, "UGX": 0, "RWF": 0, "XOF": 0, "XAF": 0, "BHD": 3, "KWD": 3}


def exponent(currency: str) -> int:
    """The currency's minor-unit exponent (2 unless ISO 4217 says otherwise)."""
    return _EXPONENT.get(currency.strip().upper(), 2)


def money(minor: int | None, currency: str = "MWK") -> str:
    """Minor units as text: `1500000, "MWK"` -> `"MWK 15,000.00"`, `1500, "JPY"` ->
    `"JPY 1,500"`, `-250, "USD"` -> `"-USD 2.50"` (the sign leads, whatever the exponent)."""
    if minor is None:
        return ""
    currency = currency.strip().upper()
    exp = _EXPONENT.get(currency, 2)
    sign = "-" if minor < 0 else ""
    major, frac = divmod(abs(minor), 10**exp)
    amount = f"{major:,}" if exp == 0 else f"{major:,}.{frac:0{exp}d}"
    return f"{sign}{currency} {amount}"
