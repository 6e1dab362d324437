"""What every layer shares and nothing below it: the bottom of the import graph.

``model`` (frozen cloud values), ``facts`` (what the journal tells ``decide``), ``errors``
(the one exception tree), ``clock`` (the only wall-clock reader), ``outcomes`` (the write
outcome vocabulary), ``actions`` (the action vocabulary), ``writes`` (what a write is),
``keys`` (every idempotency key format), ``ports`` (the Protocols the engine asks of the
journal) and ``workflow_match`` (the one workflow selector, for rules and triggers alike). Nothing here does I/O, and
nothing here imports another aomd package.
"""
