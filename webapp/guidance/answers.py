"""Which guidance row a Juhe call's answer stands for: the product's reading of the wire protocol
(``webapp.juhe.answer``), which itself knows nothing of this table."""
from __future__ import annotations

from ..juhe.answer import JuheError, JuheResult

LOW_SCORE = "low_score"  # error_code 0, but the similarity is below the pass line

# The keys of a call that brought no service-level answer, by JuheError.kind ("http" and
# "invalid_response" alike: Juhe's answer could not be read).
JUHE_TIMEOUT, JUHE_UNREACHABLE, JUHE_INVALID_RESPONSE = "juhe_timeout", "juhe_unreachable", "juhe_invalid_response"
_FAILURE_KEYS = {"timeout": JUHE_TIMEOUT, "connection": JUHE_UNREACHABLE}


def guidance_key(answer: JuheResult | JuheError, pass_score: float) -> int | str:
    """The one mapping from what a call brought back to its guidance row (and the attempt's
    recorded outcome): Juhe's own code; ``LOW_SCORE`` for error_code 0 below ``pass_score``;
    for a failure its system code, or the key of what went wrong."""
    if isinstance(answer, JuheResult):
        if answer.error_code == 0 and not answer.passed(pass_score):
            return LOW_SCORE
        return answer.error_code
    if answer.kind == "system" and answer.error_code is not None:
        return answer.error_code
    return _FAILURE_KEYS.get(answer.kind, JUHE_INVALID_RESPONSE)
