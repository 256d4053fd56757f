"""schemathesis hooks for the contract test (SCHEMATHESIS_HOOKS=hooks).

Two adjustments to the request bodies of every phase, both about the test machine rather than the API:

* An integral float (``981.0``) is sent as the integer it is. JSON Schema counts ``981.0`` as an
  integer, but no client serialises integers that way and Kiln's integer fields refuse it. One
  beyond 64 bits (``-1.79e308``) stays a float: as a 309-digit integer no JSON parser reads it as
  the number it was, and no integer field holds it anyway.
* ``desired_nodes`` in range is kept at 2 or fewer: a ``local`` compute environment's nodes are
  agent processes on this machine, and hundreds of them would only measure the machine.
  Out-of-range values (the negative cases) are left alone.
"""

import schemathesis


def _integral(value):
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral(v) for v in value]
    return value


@schemathesis.hook
def before_call(context, case, kwargs):
    """Every phase's requests pass here; schemathesis re-checks the case after the change."""
    body = _integral(case.body)
    if isinstance(body, dict):
        n = body.get("desired_nodes")
        if isinstance(n, int) and not isinstance(n, bool) and 2 < n <= 1000:
            body["desired_nodes"] = n % 3
    if isinstance(body, (dict, list)):
        # (`==` cannot tell: in Python 981.0 == 981.)
        case.body = body
