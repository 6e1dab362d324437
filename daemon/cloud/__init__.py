"""Talking to Huawei Cloud: the only package that knows HTTP, JSON and AK/SK.

``client.AomClient`` implements ``port.CloudClient`` from small single-job modules:
``auth`` (token / AK/SK headers; ``signer`` is the reference algorithm), ``wire`` (JSON to
``daemon.kernel.model``, and what counts as a write's success body), ``failures`` (status
to ``daemon.kernel.errors``), ``retry`` and ``ratelimit``.
"""
