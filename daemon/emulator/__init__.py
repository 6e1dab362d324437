"""The fake AOM / DataArts cloud: ``Emulator`` and ``Fault``.

Typical test use::

    emu = Emulator(project_id=PID, access_key=AK, secret_key=SK, token=TOKEN, speed=0)
    url = await emu.start()                      # http://127.0.0.1:PORT
    wid = emu.add_workflow(name="patch", nodes=[{"id": "a", "behaviour": {"fail_times": 1}}])
    eid = emu.start_execution(wid)
    emu.advance(10)                              # jump emulated time (speed=0: only this moves it)
    ...                                          # code under test talks HTTP to ``url``
    assert emu.changes("operation") == [...]     # what reached the "cloud"
    await emu.stop()

``speed=0`` freezes emulated time so a test moves it only with ``advance``; a positive
speed makes it run (crons fire via a background ticker). Python-side setup calls
(``start_execution``, ``set_trigger``) are not written to the ledger; HTTP requests are.
Synchronous callers (the official SDK, benchmarks) use ``EmulatorThread``.

Benchmarks fill it in bulk and plant incidents at known emulated times::

    pop = emu.populate(2000, 5, seed=1, incidents=50, within=3600, quiet=True)
    for inc in pop.incidents:   # Incident(workflow_id, execution_id, node_id, kind, start_at, at)
        ...                     # inc.kind "fail": node ``work`` fails at inc.at; "pause":
                                # node ``approve`` starts pausing at inc.at

(also ``POST /_emulator/populate`` with the same fields as JSON, for a CLI-run emulator).
Faults: ``emu.inject(Fault(kind="throttle", path="executions$", times=3, retry_after=2))``.
"""

from daemon.emulator.emulator import Emulator
from daemon.emulator.faults import Fault, FaultSet
from daemon.emulator.ledger import LedgerEntry
from daemon.emulator.populate import Incident, Population
from daemon.emulator.state import Behaviour, NodeSpec
from daemon.emulator.thread import EmulatorThread

__all__ = [
    "Behaviour",
    "Emulator",
    "EmulatorThread",
    "Fault",
    "FaultSet",
    "Incident",
    "LedgerEntry",
    "NodeSpec",
    "Population",
]
