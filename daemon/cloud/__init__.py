"""Talking to Huawei Cloud: the only package that knows HTTP, JSON and AK/SK.

``client.AomClient`` implements ``protocol.CloudClient`` from small single-job modules:
``auth`` (token / AK/SK headers; ``signer`` is the reference algorithm), ``wire`` (JSON to
``daemon.kernel.model``), ``errors`` (status to ``daemon.kernel.errors``), ``retry`` and ``ratelimit``.
"""
