"""City-management cases: categories and codes, workflow state machine, dispatch, deadlines, store, filing policy.

| module | owns |
| --- | --- |
| ``categories`` | 部件/事件 categories, codes, time limits per urgency, detector event → category |
| ``calendar`` | the work calendar and deadline arithmetic (工作时 / 工作日 / 自然时), pure |
| ``grid`` | unit grid cells (万米单元网格): GeoJSON model, point lookup, overlap checks |
| ``dispatch`` | category × grid/street → exactly one responsible unit, with a fallback |
| ``loader`` / ``bundle`` | reading the four config files with errors naming file and key path |
| ``workflow`` | the case state machine: stages, side paths, role checks, Chinese labels, pure |
| ``store`` | ``CaseStore``: SQLite (WAL), schema migrations, alarm index, event outbox |
| ``filing`` | ``CaseFiler``: alarms → filed / attached / video-verified cases; ``build_filer`` |
| ``desk`` | ``CaseDesk``: people's workflow actions on stored cases |
| ``events`` | ``CaseEvent``, the message on stream ``case_events`` |
| ``worker`` | ``CaseWorker``: consume ``alarms``, file, publish from the outbox, ack |
"""
