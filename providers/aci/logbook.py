"""An attempt's log as far as it is known, pieced together from ACI's ``list_logs`` answers.

``list_logs`` returns the container's whole log as one text, not a stream with
positions, and ACI keeps only so much: up to 4 MB while the container runs, and the
last 16 KB or 1,000 lines once it stopped (documented limits,
https://learn.microsoft.com/en-us/azure/container-instances/container-instances-resource-and-quota-limits).
The log disappears with the group. So the provider reads the log repeatedly while the
container runs and before any stop or delete, and merges each answer into what it
already knows: an answer that extends the known text adds its new end; an answer cut
at the front (a stopped instance's last lines) is aligned on the known text's end.
"""

from __future__ import annotations

#: Bytes of an answer used to find where it starts inside the known text.
_ANCHOR = 64


def merge(known: bytes, answer: bytes) -> bytes:
    """The log that ``known`` and a later, possibly front-truncated, ``answer`` describe together."""
    if answer.startswith(known):
        return answer
    if not answer or known.endswith(answer):
        return known
    # The answer lost its front: find the longest end of ``known`` it starts with.
    anchor = answer[:_ANCHOR]
    start = max(0, len(known) - len(answer))
    pos = known.find(anchor, start)
    while pos != -1:
        overlap = len(known) - pos
        if answer[:overlap] == known[pos:]:
            return known + answer[overlap:]
        pos = known.find(anchor, pos + 1)
    for overlap in range(min(len(anchor) - 1, len(known)), 7, -1):  # short overlaps would match by chance
        if known.endswith(answer[:overlap]):
            return known + answer[overlap:]
    if len(answer) < len(known) and answer in known:
        return known  # an older, shorter answer (read before a newer one)
    # Nothing in common: the answer starts after everything known (a gap ACI dropped).
    return known + answer
